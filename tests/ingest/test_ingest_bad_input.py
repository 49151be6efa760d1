"""Bad files and records are quarantined with a reason; every good record beside them is kept."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
from conftest import event, write_trail

from trailsight.ingest import ingest

Query = Callable[..., list[tuple[Any, ...]]]


def _quarantine_lines(store: Path) -> list[dict[str, Any]]:
    files = sorted((store / "quarantine").glob("*.jsonl"))
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def test_corrupt_file_and_mixed_file(tmp_path: Path, query: Query) -> None:
    logs = tmp_path / "logs"
    # One corrupt .json.gz: gzip cut in half, and it breaks inside the Records array.
    whole = gzip.compress(orjson.dumps({"Records": [event(i) for i in range(200)]}))
    (logs).mkdir()
    (logs / "corrupt.json.gz").write_bytes(whole[: len(whole) // 2])
    # One file of good and bad records.
    mixed = [
        event(1000),
        {k: v for k, v in event(1001).items() if k != "eventTime"},  # missing eventTime
        event(1002),
        event(1003, eventName=None),  # missing eventName
        event(1004, eventTime="yesterday"),  # not a time
        event(1005, awsRegion={"nested": True}),  # wrong type
        event(1006, userIdentity="root"),  # wrong type
        event(1007),
        "just a string",  # not an object
        event(1008, userAgent="x" * 100_000),  # long user agent: kept, cut
        event(1009, requestParameters={"blob": "y" * (2 << 20)}),  # over the record cap
        event(1010),
    ]
    write_trail(logs, mixed, name="mixed")
    summary = ingest([logs], tmp_path / "s", workers=0)
    good_mixed = {1000, 1002, 1007, 1008, 1010}
    kept = {int(r[0][-12:]) for r in query(tmp_path / "s", "SELECT event_id FROM events")}
    assert good_mixed <= kept
    from_corrupt = kept - good_mixed
    # Every complete record before the break is kept, in order from the start.
    assert from_corrupt == set(range(len(from_corrupt)))
    assert len(from_corrupt) > 0
    reasons = {(q["source"].rsplit("/", 1)[-1], q["location"]): q["reason"] for q in _quarantine_lines(tmp_path / "s")}
    assert reasons[("mixed.json.gz", "record 1")] == "missing eventTime"
    assert reasons[("mixed.json.gz", "record 3")] == "missing eventName"
    assert "not an ISO 8601 time" in reasons[("mixed.json.gz", "record 4")]
    assert reasons[("mixed.json.gz", "record 5")] == "awsRegion is an object, expected a string"
    assert reasons[("mixed.json.gz", "record 6")] == "userIdentity is a str, expected an object"
    assert reasons[("mixed.json.gz", "record 8")] == "record is a str, expected an object"
    assert "over the 1,048,576-byte cap" in reasons[("mixed.json.gz", "record 10")]
    corrupt = {loc: why for (name, loc), why in reasons.items() if name == "corrupt.json.gz"}
    assert len(corrupt) == 1
    assert "gzip stream truncated" in next(iter(corrupt.values()))
    assert summary.quarantined == 8
    assert summary.records == summary.new + summary.quarantined
    assert summary.exit_code == 3
    ua = query(tmp_path / "s", "SELECT length(user_agent), length(raw) FROM events WHERE event_id LIKE '%1008'")
    assert ua[0][0] == 8192
    assert ua[0][1] > 100_000
    # The same entries are in the state database, committed with their batch.
    con = duckdb.connect(str(tmp_path / "s" / "state.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT count(*), count(DISTINCT reason) FROM quarantine").fetchall()
    finally:
        con.close()
    assert rows[0][0] == 8


def test_not_json_wrong_shape_and_invalid_utf8(tmp_path: Path, query: Query) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "notes.json").write_bytes(b"hello, this is not JSON")
    (logs / "shape.json").write_bytes(orjson.dumps({"Records": {"not": "a list"}}))
    (logs / "number.json").write_bytes(b"42")
    text = orjson.dumps({"Records": [event(1), event(2), event(3)]})
    (logs / "utf8.json").write_bytes(text.replace(b"DescribeInstances", b"Describe\xffInstances", 1))
    lines = b"\n".join([orjson.dumps(event(10)), b"{not json", orjson.dumps(event(11)), b""])
    (logs / "lines.jsonl").write_bytes(lines)
    summary = ingest([logs], tmp_path / "s", workers=0)
    kept = sorted(int(r[0][-12:]) for r in query(tmp_path / "s", "SELECT event_id FROM events"))
    assert kept == [2, 3, 10, 11]
    reasons = {(q["source"].rsplit("/", 1)[-1], q["location"]): q["reason"] for q in _quarantine_lines(tmp_path / "s")}
    assert reasons[("notes.json", "byte 0")].startswith("not JSON")
    assert reasons[("shape.json", "file")] == "wrong shape: Records is not an array"
    assert reasons[("utf8.json", "record 0")].startswith("invalid UTF-8")
    assert reasons[("lines.jsonl", "line 2")].startswith("invalid JSON")
    assert summary.quarantined == 5


def test_duplicates_within_a_batch_and_across_runs(tmp_path: Path, query: Query) -> None:
    logs = tmp_path / "logs"
    write_trail(logs, [event(i) for i in range(10)], name="a")
    write_trail(logs, [event(i) for i in range(5, 15)], name="b")  # CloudTrail redelivers 5..9
    first = ingest([logs], tmp_path / "s", workers=0)
    assert (first.new, first.duplicates) == (15, 5)
    write_trail(logs, [event(i) for i in range(10, 20)], name="c")
    second = ingest([logs], tmp_path / "s", workers=0)
    assert (second.files, second.skipped_files, second.new, second.duplicates) == (1, 2, 5, 5)
    assert query(tmp_path / "s", "SELECT count(*), count(DISTINCT event_id) FROM events") == [(20, 20)]


def test_missing_event_id_gets_a_stable_generated_id(tmp_path: Path, query: Query) -> None:
    logs = tmp_path / "logs"
    record = {k: v for k, v in event(1).items() if k != "eventID"}
    write_trail(logs, [record], name="a")
    write_trail(logs, [record], name="b")
    summary = ingest([logs], tmp_path / "s", workers=0)
    assert (summary.new, summary.duplicates) == (1, 1)
    ids = query(tmp_path / "s", "SELECT event_id FROM events")
    assert ids[0][0].startswith("ts-")
    assert len(ids[0][0]) == 35
