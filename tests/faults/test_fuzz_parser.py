"""A fuzz run of the record parser: whatever the bytes, both parse paths end, never raise, and agree.

The inputs are CloudTrail-shaped (records with hostile values, deep nesting, wrong types; as a
compact delivery file, a spaced document, a bare array or JSON lines; gzipped or not; cut short,
with bytes flipped) and plain random bytes. For each input the columnar path (a
:class:`~trailsight.ingest.normalise.FastRows` sink) and the row path must give the same event ids
and the same number of quarantined items, and every record is accounted for.

CI runs a fixed, small budget. ``TRAILSIGHT_FUZZ_EXAMPLES=20000 pytest tests/faults/test_fuzz_parser.py``
runs a longer one by hand.
"""

from __future__ import annotations

import gzip
import io
import os
from typing import Any

import orjson
from faultkit import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkit import CLOUDTRAIL_KEYS
from trailsight.ingest import normalise as norm
from trailsight.ingest.convert import SourceCounts, read_source
from trailsight.ingest.quarantine import QuarantineEntry
from trailsight.ingest.sources import STDIN, PathFilter, SourceFile

EXAMPLES = int(os.environ.get("TRAILSIGHT_FUZZ_EXAMPLES", "150"))

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["", "\u202e", "\x1b[2J", "\x00", "\ud800x"[1:], "arn:aws:iam::111122223333:root", "1", "null", "{}"]
)
_scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | _text
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def _record(draw: st.DrawFn) -> Any:
    rec: dict[str, Any] = event(draw(st.integers(0, 50)))
    for name in draw(st.lists(st.sampled_from(CLOUDTRAIL_KEYS), max_size=3)):
        if draw(st.booleans()):
            rec.pop(name, None)
        else:
            rec[name] = draw(_json)
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.sampled_from([63, 64, 65, 300, 1100]))
        rec["requestParameters"] = orjson.loads(b'{"a":' * min(depth, 1000) + b"1" + b"}" * min(depth, 1000))
    if draw(st.integers(0, 19)) == 0:
        return draw(_json)  # not an object at all
    return rec


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return b'{"deep":' * 300 + b"1" + b"}" * 300


@st.composite
def _source(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    texts = [_dumps(r) for r in draw(st.lists(_record(), max_size=6))]
    shape = draw(st.sampled_from(["compact", "spaced", "array", "lines", "two-documents"]))
    if shape == "compact":
        data = b'{"Records":[' + b",".join(texts) + b"]}"
    elif shape == "spaced":
        data = b'{"Records": [\n ' + b",\n ".join(texts) + b"\n]}\n"
    elif shape == "array":
        data = b"[" + b",".join(texts) + b"]"
    elif shape == "lines":
        data = b"\n".join(texts) + b"\n"
    else:
        data = b'{"Records":[' + b",".join(texts) + b"]}" + b'{"Records":[' + b",".join(texts[:1]) + b"]}"
    if draw(st.integers(0, 4)) == 0 and data:
        data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 2))):
        if data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if draw(st.booleans()):
        data = gzip.compress(data)
        if draw(st.integers(0, 4)) == 0:
            data = data[: draw(st.integers(0, len(data)))]
    return data


def _read(data: bytes, *, columnar: bool) -> tuple[list[str], int, SourceCounts]:
    counts = SourceCounts()
    sink = norm.FastRows() if columnar else None
    ids: list[str] = []
    quarantined = 0
    source = SourceFile(key=STDIN, size=len(data), version="")
    for item in read_source(source, PathFilter(), counts, stdin=io.BytesIO(data), sink=sink):
        if isinstance(item, QuarantineEntry):
            quarantined += 1
        else:
            ids.append(str(item[0]))  # type: ignore[index]
    if sink is not None and len(sink):
        table, _ = sink.table()
        ids.extend(table.column("event_id").to_pylist())
    return sorted(ids), quarantined, counts


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(_source())
def test_both_parse_paths_end_agree_and_account_for_every_record(data: bytes) -> None:
    rows_ids, rows_bad, rows_counts = _read(data, columnar=False)
    cols_ids, cols_bad, cols_counts = _read(data, columnar=True)
    assert cols_ids == rows_ids
    assert cols_bad == rows_bad
    for ids, bad, counts in ((rows_ids, rows_bad, rows_counts), (cols_ids, cols_bad, cols_counts)):
        assert counts.quarantined == bad
        assert len(ids) + counts.filtered <= counts.records + bad
