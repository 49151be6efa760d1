"""Real captures ingest exactly, with the right identity keys, and re-runs add nothing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import FLAWS2, INVICTUS, OTRF, PANTHER

from trailsight.ingest import Rejection, ingest, normalise_record
from trailsight.store.lake import lake_files
from trailsight.store.layout import StoreLayout

Query = Callable[..., list[tuple[Any, ...]]]


def test_invictus_ingests_2900_events_and_rerun_adds_none(real: Path, tmp_path: Path, query: Query) -> None:
    store = tmp_path / "s"
    first = ingest([INVICTUS], store, workers=0)
    assert (first.files, first.records, first.new, first.duplicates, first.quarantined) == (55, 2900, 2900, 0, 0)
    assert first.exit_code == 0
    again = ingest([INVICTUS], store, workers=0)
    assert (again.files, again.skipped_files, again.new) == (0, 55, 0)
    forced = ingest([INVICTUS], store, workers=0, force=True)
    assert (forced.files, forced.new, forced.duplicates) == (55, 0, 2900)
    assert query(store, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(2900, 2900)]
    assert len(lake_files(StoreLayout(store))) >= 1


def test_invictus_identity_keys(real: Path, tmp_path: Path, query: Query) -> None:
    store = tmp_path / "s"
    ingest([INVICTUS], store, workers=0)
    bert = query(
        store, "SELECT principal, principal_name, count(*) FROM events WHERE principal LIKE '%bert-jan' GROUP BY ALL"
    )
    assert bert == [("arn:aws:iam::123837392027:user/bert-jan", "bert-jan", 2642)]
    roles = query(
        store,
        "SELECT DISTINCT principal, principal_arn FROM events WHERE identity_type = 'AssumedRole' ORDER BY 1",
    )
    assert len(roles) >= 5
    for principal, session_arn in roles:
        assert principal.startswith("arn:aws:iam::123837392027:role/"), principal
        assert "assumed-role" not in principal
        assert session_arn.startswith("arn:aws:sts::")
        assert ":assumed-role/" in session_arn
    # Services acting without a type in userIdentity are keyed by the service host.
    hosts = {r[0] for r in query(store, "SELECT DISTINCT principal FROM events WHERE identity_type IS NULL")}
    assert hosts == {"secretsmanager.amazonaws.com", "ec2.amazonaws.com"}
    # Enrichment ran on the batch: every row has its user-agent family and network kind.
    assert query(store, "SELECT count(*) FROM events WHERE ua_family IS NULL OR ip_kind IS NULL") == [(0,)]
    assert query(
        store, "SELECT ua_family FROM events WHERE principal LIKE '%bert-jan' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ) == [("terraform",)]


def test_raw_and_service_columns(real: Path, tmp_path: Path, query: Query) -> None:
    store = tmp_path / "s"
    ingest([INVICTUS], store, workers=0)
    rows = query(store, "SELECT event_id, raw, service, event_source, source_file, source_offset FROM events LIMIT 50")
    for event_id, raw, service, source, file, offset in rows:
        record = orjson.loads(raw)
        assert record["eventID"] == event_id
        assert service == source.removesuffix(".amazonaws.com")
        assert Path(file).parent == INVICTUS.resolve()  # ingest records resolved paths
        assert orjson.loads(Path(file).read_bytes())["Records"][offset]["eventID"] == event_id


def test_otrf_json_lines_use_at_timestamp(real: Path, tmp_path: Path, query: Query) -> None:
    store = tmp_path / "s"
    summary = ingest([OTRF / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"], store, workers=0)
    assert (summary.records, summary.new, summary.quarantined) == (103, 103, 0)
    first, last = query(store, "SELECT min(event_time), max(event_time) FROM events")[0]
    assert first.astimezone(UTC).date() == datetime(2020, 9, 14, tzinfo=UTC).date()
    assert last >= first
    waf = query(store, "SELECT DISTINCT principal FROM events WHERE principal LIKE '%BankingWAFRole%'")
    assert len(waf) == 1
    assert waf[0][0].startswith("arn:aws:iam::")
    assert ":role/" in waf[0][0]
    # JSON lines report the line number as the offset.
    assert query(store, "SELECT min(source_offset), max(source_offset) FROM events") == [(1, 103)]


def test_flaws2_s3_layout_with_underscored_region_folder(real: Path, tmp_path: Path, query: Query) -> None:
    store = tmp_path / "s"
    summary = ingest([FLAWS2], store, workers=0)
    assert (summary.files, summary.new, summary.quarantined) == (8, 37, 0)
    assert query(store, "SELECT DISTINCT account_id FROM events") == [("653711331788",)]
    pruned = ingest([FLAWS2], tmp_path / "s2", workers=0, regions=["us-east-1"], accounts=["653711331788"])
    assert pruned.new == 37
    none = ingest([FLAWS2], tmp_path / "s3", workers=0, accounts=["999999999999"])
    assert (none.files, none.new) == (0, 0)


def test_every_panther_rule_event_normalises_or_says_why(real: Path) -> None:
    cases = orjson.loads(PANTHER.read_bytes())
    assert len(cases) == 453
    normalised, rejected = [], []
    for case in cases:
        out = normalise_record(case["event"])
        (rejected if isinstance(out, Rejection) else normalised).append((case, out))
    # Every rule-test event with a usable time and name normalises; the rest are exactly the
    # ones without a time ('redacted', '...', or missing) and say so.
    for case, out in rejected:
        when = case["event"].get("eventTime")
        assert when is None or when in ("redacted", "..."), (case["test_name"], out)
        assert "eventTime" in out.reason
    assert len(normalised) == 453 - len(rejected)
    assert len(rejected) == 17
    for case, out in normalised:
        assert out["principal"]
        assert out["actor"]
        assert out["event_name"] == case["event"]["eventName"]
        ui = case["event"].get("userIdentity") or {}
        if ui.get("type") == "AssumedRole" and ui.get("sessionContext", {}).get("sessionIssuer", {}).get("arn"):
            assert out["principal"] == ui["sessionContext"]["sessionIssuer"]["arn"]
        if ui.get("type") == "IAMUser" and ui.get("arn"):
            assert out["principal"] == ui["arn"]


def test_since_until_and_region_filters_prune_s3_layout_folders(real: Path, tmp_path: Path) -> None:
    src = tmp_path / "logs"
    shutil.copytree(FLAWS2, src)
    # A corrupt file in a folder outside the date range must never be opened.
    bad = src / "AWSLogs" / "653711331788" / "CloudTrail" / "us_east_1" / "2018" / "10" / "01"
    bad.mkdir(parents=True)
    (bad / "653711331788_CloudTrail_us-east-1_20181001T0000Z_x.json.gz").write_bytes(b"\x1f\x8bnot really gzip")
    other_region = src / "AWSLogs" / "653711331788" / "CloudTrail" / "eu-west-1" / "2018" / "11" / "28"
    other_region.mkdir(parents=True)
    (other_region / "bad.json.gz").write_bytes(b"junk")
    summary = ingest(
        [src],
        tmp_path / "s",
        workers=0,
        since=datetime(2018, 11, 28, tzinfo=UTC),
        until=datetime(2018, 11, 29, tzinfo=UTC),
        regions=["us-east-1"],
    )
    assert (summary.files, summary.new, summary.quarantined) == (8, 37, 0)
    everything = ingest([src], tmp_path / "s2", workers=0)
    assert everything.quarantined == 2  # without the filters both bad files are read and set aside
    narrow = ingest(
        [src], tmp_path / "s3", workers=0, since=datetime(2018, 11, 28, 23, 0, tzinfo=UTC), regions=["us-east-1"]
    )
    assert 0 < narrow.new < 37
    assert narrow.filtered == 37 - narrow.new


@pytest.mark.slow
def test_pool_of_workers_gives_the_same_lake(real: Path, tmp_path: Path, query: Query) -> None:
    inline = ingest([INVICTUS, FLAWS2], tmp_path / "a", workers=0)
    pooled = ingest([INVICTUS, FLAWS2], tmp_path / "b", workers=2, batch_rows=500)
    assert pooled.workers == 2
    assert (pooled.new, pooled.duplicates) == (inline.new, inline.duplicates) == (2937, 0)
    sql = "SELECT event_id, principal, actor, event_time, raw FROM events ORDER BY event_id"
    assert query(tmp_path / "a", sql) == query(tmp_path / "b", sql)
