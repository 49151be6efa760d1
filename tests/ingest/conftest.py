"""Fixtures for the ingest tests: the real captures, small CloudTrail builders, store readers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from trailkit import event as event
from trailkit import s3_layout as s3_layout
from trailkit import write_trail as write_trail
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
