"""Per-record limits on both parse paths: nesting depth, record size, inflated size and ratio.

One bad record costs only itself: records in = rows in the lake + records quarantined.
"""

from __future__ import annotations

import gzip
import time
import zlib
from pathlib import Path

import orjson
import pytest
from faultkit import event, lake_ids

from trailsight.config import Settings
from trailsight.ingest.pipeline import IngestSummary, ingest


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _document(records: list[bytes], *, compact: bool) -> bytes:
    """A Records document: compact as AWS writes it (the columnar path) or spaced (the row path)."""
    if compact:
        return b'{"Records":[' + b",".join(records) + b"]}"
    return b'{"Records": [\n  ' + b",\n  ".join(records) + b"\n]}\n"


def _with_params(i: int, params: bytes) -> bytes:
    return orjson.dumps(event(i)).replace(b'{"maxResults":5}', params)


def _ingest(tmp_path: Path, data: bytes, settings: Settings | None = None, name: str = "t.json") -> IngestSummary:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / name).write_bytes(data)
    return ingest([logs], tmp_path / "s", settings, workers=0)


def _reasons(tmp_path: Path) -> list[str]:
    lines = [
        line for f in sorted((tmp_path / "s" / "quarantine").glob("*.jsonl")) for line in f.read_bytes().splitlines()
    ]
    return [orjson.loads(line)["reason"] for line in lines]


@pytest.mark.parametrize("compact", [True, False], ids=["columnar", "row"])
@pytest.mark.parametrize("depth", [80, 300, 1500])
def test_a_deep_record_costs_only_itself(tmp_path: Path, compact: bool, depth: int) -> None:
    records = [orjson.dumps(event(1)), _with_params(2, _nested(depth)), orjson.dumps(event(3))]
    summary = _ingest(tmp_path, _document(records, compact=compact))
    assert (summary.records, summary.new, summary.quarantined) == (3, 2, 1)
    assert lake_ids(tmp_path / "s") == sorted(event(i)["eventID"] for i in (1, 3))
    (reason,) = _reasons(tmp_path)
    assert "levels deep" in reason
    assert "max_depth" in reason


@pytest.mark.parametrize("compact", [True, False], ids=["columnar", "row"])
def test_the_depth_and_size_caps_are_settings(tmp_path: Path, compact: bool) -> None:
    settings = Settings(data={"ingest": {"max_depth": 8, "max_record_bytes": 4096}})
    records = [
        _with_params(1, _nested(7)),  # 8 levels with the record itself: kept
        _with_params(2, _nested(8)),  # 9: over
        _with_params(3, orjson.dumps({"blob": "x" * 5000})),  # over 4096 bytes
        orjson.dumps(event(4)),
    ]
    summary = _ingest(tmp_path, _document(records, compact=compact), settings)
    assert (summary.records, summary.new, summary.quarantined) == (4, 2, 2)
    assert lake_ids(tmp_path / "s") == sorted(event(i)["eventID"] for i in (1, 4))
    reasons = sorted(_reasons(tmp_path))
    assert "max_record_bytes" in reasons[0] or "max_record_bytes" in reasons[1]
    assert any("9 levels deep" in r for r in reasons)


def _bomb(prefix: bytes, padding: int, suffix: bytes) -> bytes:
    """gzip of ``prefix`` + ``padding`` spaces + ``suffix``: one well-compressed MiB of spaces as a
    gzip member repeated (readers inflate concatenated members in turn), so it is made at once."""
    member = gzip.compress(b" " * (1 << 20), 9)
    return gzip.compress(prefix) + member * (padding >> 20) + gzip.compress(suffix)


def test_a_gzip_bomb_is_stopped_early_and_the_records_before_it_kept(tmp_path: Path) -> None:
    head = b'{"Records":[' + orjson.dumps(event(1)) + b"," + orjson.dumps(event(2)) + b","
    data = _bomb(head, 1 << 30, orjson.dumps(event(3)) + b"]}")
    assert len(data) < 2 << 20
    started = time.monotonic()
    summary = _ingest(tmp_path, data, name="bomb.json.gz")
    assert time.monotonic() - started < 15
    assert (summary.records, summary.new, summary.quarantined) == (3, 2, 1)
    assert lake_ids(tmp_path / "s") == sorted(event(i)["eventID"] for i in (1, 2))
    (reason,) = _reasons(tmp_path)
    assert "max_inflate_ratio" in reason


def test_the_inflated_size_cap_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(data={"ingest": {"max_inflated_bytes": 64 << 10}})
    lines = b"\n".join(orjson.dumps(event(i)) for i in range(200)) + b"\n"
    assert len(lines) > 64 << 10
    summary = _ingest(tmp_path, zlib.compress(lines, wbits=31), settings, name="big.jsonl.gz")
    assert summary.quarantined == 1
    assert summary.new + summary.quarantined == summary.records
    assert 0 < summary.new < 200
    (reason,) = _reasons(tmp_path)
    assert "max_inflated_bytes" in reason


@pytest.mark.parametrize("value", [0, -1, "64", True, 1.5])
def test_a_bad_limit_setting_is_one_line_naming_it(tmp_path: Path, value: object) -> None:
    from trailsight.errors import ConfigError

    settings = Settings(data={"ingest": {"max_depth": value}})
    with pytest.raises(ConfigError, match=r"^\[ingest\] max_depth must be a whole number of at least 1$"):
        _ingest(tmp_path, orjson.dumps({"Records": [event(1)]}), settings)


def test_max_depth_is_at_most_255(tmp_path: Path) -> None:
    from trailsight.errors import ConfigError

    settings = Settings(data={"ingest": {"max_depth": 256}})
    with pytest.raises(ConfigError, match=r"^\[ingest\] max_depth must be at most 255"):
        _ingest(tmp_path, orjson.dumps({"Records": [event(1)]}), settings)
