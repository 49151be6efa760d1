"""What the executors run on raw CloudTrail (``convert_files``), and the driver's listing — without Spark."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from trailsight.engines import spark_cloudtrail as sc
from trailsight.errors import IngestError
from trailsight.features.source import event_days
from trailsight.ingest.pipeline import load_enricher
from trailsight.ingest.sources import PathFilter, SourceFile


def _record(i: int, **extra: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
        "eventTime": f"2025-03-03T10:00:{i:02d}Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "10.0.0.1",
        "eventID": f"id-{i}",
        "recipientAccountId": "111122223333",
    }
    rec.update(extra)
    return rec


def _source(path: Path) -> SourceFile:
    return SourceFile(key=str(path), size=path.stat().st_size if path.exists() else 0, version="1")


def test_rows_of_several_files_share_tables_and_problems_come_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sc, "ROWS_PER_TABLE", 3)
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps({"Records": [_record(i) for i in range(4)]}))
    mixed = tmp_path / "mixed.json"
    mixed.write_bytes(orjson.dumps({"Records": [_record(9), {"eventTime": "2025-03-03T10:00:00Z"}, _record(2)]}))
    sources = [(0, _source(good)), (1, _source(mixed)), (2, _source(tmp_path / "gone.json"))]
    tables = list(sc.convert_files(sources, PathFilter(), load_enricher(None)))
    assert all(t.schema == sc.CONVERTED_SCHEMA for t in tables)
    out = pa.concat_tables(tables)
    kinds = out["_kind"].to_pylist()
    assert [t.num_rows for t in tables] == [3, 3, 2, 3]  # events by three across files, problems, counts
    assert kinds == ["event"] * 6 + ["problem"] * 2 + ["file"] * 3
    events = out.filter(pa.compute.equal(out["_kind"], "event"))
    assert events["event_id"].to_pylist() == ["id-0", "id-1", "id-2", "id-3", "id-9", "id-2"]
    assert events["_file_no"].to_pylist() == [0, 0, 0, 0, 1, 1]
    assert events["_seq"].to_pylist() == [0, 1, 2, 3, 0, 2]
    assert set(events["ip_kind"].to_pylist()) == {"private"}  # enriched on the way
    problems = out.filter(pa.compute.equal(out["_kind"], "problem")).to_pylist()
    first = problems[0]
    assert (first["_file_no"], first["_seq"], first["_location"], first["_reason"]) == (
        1,
        1,
        "record 1",
        "missing eventName",
    )
    assert problems[1]["_location"] == "file"
    assert problems[1]["_reason"].startswith("read failed: [Errno 2] No such file")
    counts = out.filter(pa.compute.equal(out["_kind"], "file")).to_pylist()
    assert [(c["_records"], c["_quarantined"], c["_filtered"]) for c in counts] == [(4, 0, 0), (3, 1, 0), (0, 1, 0)]


def test_record_filters_apply(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(orjson.dumps({"Records": [_record(1), _record(2, eventTime="2025-03-05T00:00:00Z")]}))
    keep = PathFilter(since=datetime(2025, 3, 3, tzinfo=UTC), until=datetime(2025, 3, 4, tzinfo=UTC))
    out = pa.concat_tables(sc.convert_files([(0, _source(path))], keep, None))
    assert out.filter(pa.compute.equal(out["_kind"], "event"))["event_id"].to_pylist() == ["id-1"]
    assert out.filter(pa.compute.equal(out["_kind"], "file"))["_filtered"].to_pylist() == [1]


def test_event_days_are_the_lake_reads() -> None:
    since, until = datetime(2025, 3, 10, 6, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC)
    assert event_days(since, until, 30) == (date(2025, 2, 7), date(2025, 3, 10))


def test_listing_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"stdin \('-'\) cannot be read on Spark"):
        sc.list_sources(["-"], PathFilter())
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match="no CloudTrail files"):
        sc.list_sources([str(tmp_path)], PathFilter())
    with pytest.raises(IngestError, match="no such file or folder"):
        sc.list_sources([str(tmp_path / "nope")], PathFilter())
