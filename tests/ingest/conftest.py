"""Fixtures for the ingest tests: the real captures, small CloudTrail builders, store readers."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from trailsight.store.lake import events_sql
from trailsight.store.layout import StoreLayout

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
INVICTUS = REAL / "invictus-ir_aws_dataset" / "CloudTrail"
OTRF = REAL / "otrf_security_datasets_aws" / "datasets" / "atomic" / "aws" / "collection"
FLAWS2 = REAL / "flaws2_cloud"
PANTHER = REAL / "panther_rule_tests" / "panther_aws_cloudtrail_rule_tests.json"


@pytest.fixture(scope="session")
def real() -> Path:
    """../shared/data/real; the tests need it."""
    if not INVICTUS.is_dir():
        pytest.skip(f"real captures not found at {REAL}")
    return REAL


def event(i: int, **extra: Any) -> dict[str, Any]:
    """A plausible CloudTrail record number ``i`` (an IAM user's DescribeInstances)."""
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice",
        },
        "eventTime": f"2025-03-03T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6",
        "requestParameters": {"maxResults": 5},
        "responseElements": None,
        "requestID": f"req-{i}",
        "eventID": f"00000000-0000-4000-8000-{i:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    rec.update(extra)
    return rec


def write_trail(folder: Path, records: list[Any], *, name: str = "trail", gz: bool = True) -> Path:
    """Write ``{"Records": records}`` to ``folder/name.json[.gz]``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps({"Records": records})
    path = folder / (f"{name}.json.gz" if gz else f"{name}.json")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def s3_layout(root: Path, account: str, region: str, day: str) -> Path:
    """The S3-layout folder of one account, region and day (``YYYY-MM-DD``)."""
    y, m, d = day.split("-")
    return root / "AWSLogs" / account / "CloudTrail" / region / y / m / d


@pytest.fixture
def query() -> Callable[..., list[tuple[Any, ...]]]:
    """Run SQL over a store's lake (the ``events`` view = registered files only)."""

    def run(store: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        lake_sql, lake_params = events_sql(StoreLayout(store))
        con = duckdb.connect()
        try:
            con.execute(f"CREATE VIEW events AS {lake_sql}", lake_params)
            # Through Arrow: TIMESTAMPTZ values come back as aware datetimes without pytz.
            table = con.sql(sql, params=params or None).to_arrow_table()
            return list(zip(*(c.to_pylist() for c in table.columns), strict=True)) if table.num_columns else []
        finally:
            con.close()

    return run
