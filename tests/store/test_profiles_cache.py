"""The profile cache: a second run reads whole days back, a day that gained files is rebuilt.

A small simulated organisation is ingested into a real store. Detection over its last two days
fills ``profiles.duckdb``; the next run builds no cached day again and gives the same findings;
a file delivered late into a cached day changes that day's fingerprint, so exactly that day is
rebuilt, and the findings equal those of a run with an empty cache. A day holds only the pairs
its run's detectors need: a run with other detectors builds its days again.
"""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest

from trailsight import pipeline
from trailsight.features.asof import PAIRS
from trailsight.features.daily import DailyProfiles
from trailsight.ingest import ingest
from trailsight.simulate import simulate
from trailsight.store.layout import StoreLayout
from trailsight.store.profiles import FILE_NAME

START = date(2024, 5, 1)
SINCE = datetime(2024, 5, 5, tzinfo=UTC)
UNTIL = datetime(2024, 5, 7, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> StoreLayout:
    simulate(tmp_path / "sim", days=6, principals=6, seed=11, start=START)
    layout = StoreLayout(tmp_path / "store")
    assert ingest([tmp_path / "sim" / "AWSLogs"], layout, None, workers=0).quarantined == 0
    return layout


def _findings(layout: StoreLayout, detectors: list[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for finding in pipeline.detect(layout, SINCE, UNTIL, detectors=detectors, save=False):
        d = finding.to_dict()
        d.pop("detected_at", None)
        out.append(d)
    return out


def _reduced_days(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """Record which days each DailyProfiles.reduce call built."""
    calls: list[set[int]] = []
    original = DailyProfiles.reduce

    def spy(table: pa.Table, pairs: Any = PAIRS) -> dict[str, pa.Table]:
        calls.append(set(table.column("day").to_pylist()))
        return original(table, pairs)

    monkeypatch.setattr(DailyProfiles, "reduce", staticmethod(spy))
    return calls


def _cached_days(layout: StoreLayout) -> list[date]:
    with duckdb.connect(str(layout.root / FILE_NAME), read_only=True) as con:
        return [row[0] for row in con.execute("SELECT day FROM days ORDER BY day").fetchall()]


def test_second_run_reads_whole_days_from_the_cache(store: StoreLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _findings(store)
    assert first, "the simulated attacks should raise findings"
    # Every whole day of the history is kept: 2024-05-01 .. 05-06.
    assert _cached_days(store) == [START + timedelta(days=i) for i in range(6)]
    calls = _reduced_days(monkeypatch)
    assert _findings(store) == first
    assert calls == []  # nothing rebuilt


def test_a_late_file_rebuilds_its_day_only(store: StoreLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _findings(store)
    late_day = date(2024, 5, 3)
    record = {
        "eventVersion": "1.08",
        "eventTime": "2024-05-03T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "eventID": "late-delivery-0001",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111122223333:user/late",
            "accountId": "111122223333",
            "userName": "late",
        },
    }
    late = tmp_path / "late" / "late.json.gz"
    late.parent.mkdir()
    late.write_bytes(gzip.compress(orjson.dumps({"Records": [record]})))
    assert ingest([late], store, None, workers=0).new == 1

    calls = _reduced_days(monkeypatch)
    cached = _findings(store)
    epoch_day = (late_day - date(1970, 1, 1)).days
    assert calls == [{epoch_day}]  # only the day that gained a file was read again
    monkeypatch.undo()
    (store.root / FILE_NAME).unlink()
    assert cached == _findings(store)


def test_a_cache_of_another_shape_is_rebuilt(store: StoreLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _findings(store)
    with duckdb.connect(str(store.root / FILE_NAME)) as con:
        con.execute('ALTER TABLE "t_p" ADD COLUMN junk INTEGER')  # as if written by another version
    calls = _reduced_days(monkeypatch)
    assert _findings(store) == first
    assert len(calls) == 6  # every day built again, none read from the odd cache
    with duckdb.connect(str(store.root / FILE_NAME), read_only=True) as con:
        columns = [
            r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 't_p'").fetchall()
        ]
    assert "junk" not in columns
    assert _cached_days(store) == [START + timedelta(days=i) for i in range(6)]


def _cached_tables(layout: StoreLayout) -> set[str]:
    with duckdb.connect(str(layout.root / FILE_NAME), read_only=True) as con:
        rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 't\\_%' ESCAPE '\\'")
        return {row[0].removeprefix("t_") for row in rows.fetchall()}


def test_days_hold_only_the_pairs_the_run_needs_and_other_detectors_build_their_own(
    store: StoreLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    _findings(store)
    held = _cached_tables(store)
    assert "p_api" in held  # the behaviour model's pair
    assert "api_city" not in held  # only the seed rule rare_api_for_city reads it, and it is off by default
    seeds = ["rare_api_for_city"]
    cold = _findings(store, seeds)  # another set of pairs: the days are built again, with api_city
    assert "api_city" in _cached_tables(store)
    calls = _reduced_days(monkeypatch)
    assert _findings(store, seeds) == cold
    assert calls == []  # the same detectors again: every day from the cache
