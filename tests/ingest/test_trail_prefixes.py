"""Cheap polling of an org trail on s3:// (moto on 127.0.0.1): discover once, then list only recent date folders."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from conftest import INVICTUS

from moto_s3 import moto_s3
from trailsight.config import Settings
from trailsight.ingest.trail_prefixes import CACHE_NAME, ListingReport, RecentTrailLister, discover_region_prefixes
from trailsight.store.layout import StoreLayout
from trailsight.watch import IngestCounts, default_ingest

BUCKET = "org-trail"
ACCOUNTS = ["111111111111", "222222222222", "333333333333"]
REGIONS = ["us-east-1", "eu-west-1"]
NOW = datetime.now(UTC)
BODY = gzip.compress(next(iter(sorted(INVICTUS.glob("*.json")))).read_bytes())


def key(account: str, region: str, day: datetime, n: int) -> str:
    stamp = day.strftime("%Y%m%dT%H%MZ")
    return (
        f"AWSLogs/o-abc123/{account}/CloudTrail/{region}/{day:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{stamp}_{n:04d}abcdefghijkl.json.gz"
    )


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with moto_s3(monkeypatch) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        s3 = boto3.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket=BUCKET)
        for account in ACCOUNTS:
            for region in REGIONS:
                for days_ago in (40, 3, 1, 0):
                    s3.put_object(Bucket=BUCKET, Key=key(account, region, NOW - timedelta(days=days_ago), 1), Body=BODY)
            s3.put_object(
                Bucket=BUCKET, Key=f"AWSLogs/o-abc123/{account}/CloudTrail-Digest/us-east-1/x.json.gz", Body=b"{}"
            )
            s3.put_object(Bucket=BUCKET, Key=f"AWSLogs/o-abc123/{account}/Config/us-east-1/x.json.gz", Body=b"{}")
        yield s3


def test_discovery_finds_every_account_and_region_with_few_calls(bucket: Any) -> None:
    report = ListingReport()
    found = discover_region_prefixes(bucket, BUCKET, "AWSLogs/", report)
    assert found == sorted(f"AWSLogs/o-abc123/{a}/CloudTrail/{r}/" for a in ACCOUNTS for r in REGIONS)
    # AWSLogs/, o-abc123/, each account, each account's CloudTrail/: no object listing at all
    assert report.list_calls == 2 + 2 * len(ACCOUNTS)
    assert (
        discover_region_prefixes(bucket, BUCKET, "AWSLogs/o-abc123/111111111111/CloudTrail/us-east-1/2024/", report)
        is None
    )


def test_watch_lists_in_full_once_then_only_recent_days(bucket: Any, tmp_path: Path) -> None:
    store = tmp_path / "s"
    source = f"s3://{BUCKET}/AWSLogs/"
    first = default_ingest(source, StoreLayout(store), Settings())
    assert isinstance(first, IngestCounts)
    assert first.files == len(ACCOUNTS) * len(REGIONS) * 4  # the backfill reads every log file
    assert first.detail["listing"] == "full"
    assert first.detail["discovered"]
    assert (store / CACHE_NAME).is_file()

    # a new file today, and one written into an old folder (which cheap polling does not look at)
    bucket.put_object(Bucket=BUCKET, Key=key(ACCOUNTS[0], REGIONS[0], NOW, 2), Body=BODY)
    bucket.put_object(Bucket=BUCKET, Key=key(ACCOUNTS[0], REGIONS[0], NOW - timedelta(days=40), 3), Body=BODY)
    second = default_ingest(source, StoreLayout(store), Settings())
    assert isinstance(second, IngestCounts)
    assert second.detail["listing"] == "recent"
    assert not second.detail["discovered"]
    assert second.files == 1
    prefixes = len(ACCOUNTS) * len(REGIONS)
    assert second.detail["region_prefixes"] == prefixes
    assert second.detail["list_calls"] == 2 * prefixes  # yesterday and today, per account and region
    assert second.detail["listed_keys"] == 2 * prefixes + 1


def test_rediscovery_after_the_refresh_interval(bucket: Any, tmp_path: Path) -> None:
    lister = RecentTrailLister(f"s3://{BUCKET}/AWSLogs/", tmp_path, bucket)
    _, first = lister.plan(NOW)
    _, second = lister.plan(NOW + timedelta(minutes=15))
    bucket.put_object(Bucket=BUCKET, Key=key("444444444444", "us-east-1", NOW, 1), Body=BODY)
    sources, third = lister.plan(NOW + timedelta(hours=7))
    assert (first.discovered, second.discovered, third.discovered) == (True, False, True)
    assert third.region_prefixes == len(ACCOUNTS) * len(REGIONS) + 1
    assert any("444444444444" in s.key for s in sources)
    assert orjson.loads((tmp_path / CACHE_NAME).read_bytes())[f"s3://{BUCKET}/AWSLogs/"]["prefixes"]
