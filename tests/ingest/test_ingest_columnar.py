"""The columnar fast path (compact delivery files) gives exactly what the row path gives.

Each test reads the same file twice with :func:`trailsight.ingest.convert.read_source`: once with a
:class:`~trailsight.ingest.normalise.FastRows` sink (compact files go column by column, the
records it cannot take come back through the row path) and once without (every record through
:func:`~trailsight.ingest.normalise.normalise_row`), and compares the tables, the quarantine and
the counts.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from trailsight.ingest import normalise as norm
from trailsight.ingest.convert import SourceCounts, read_source
from trailsight.ingest.parse import Document, iter_records
from trailsight.ingest.quarantine import QuarantineEntry
from trailsight.ingest.sources import PathFilter, SourceFile

ACCOUNT = "111122223333"


def _record(i: int, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice",
        },
        "eventTime": f"2025-03-01T12:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.30",
        "requestParameters": {"Host": "s3.eu-west-1.amazonaws.com", "n": [1, 2, {"x": None}]},
        "responseElements": None,
        "eventID": f"00000000-0000-0000-0000-{i:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }
    rec.update(over)
    return {k: v for k, v in rec.items() if v is not _DROP}


_DROP = object()


def _assumed(session: str, *, mfa: str | None = None, role: str = "deploy") -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "sessionIssuer": {
            "type": "Role",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
            "accountId": ACCOUNT,
            "userName": role,
        },
        "attributes": {"creationDate": "2025-03-01T11:00:00Z"},
    }
    if mfa is not None:
        ctx["attributes"]["mfaAuthenticated"] = mfa
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "sessionContext": ctx,
    }


def _odd_records() -> list[dict[str, Any]]:
    """Records that exercise every branch: each either takes the fast path or must come back."""
    long_agent = "Mozilla/5.0 " + "x" * (norm.MAX_FIELD_CHARS + 50)
    return [
        _record(0),
        _record(1, userIdentity=_assumed("alice@example.com")),
        _record(2, userIdentity=_assumed("botocore-session-1700000000")),
        _record(3, userIdentity=_assumed("alice", role="AWSReservedSSO_Admin_0123456789abcdef", mfa="true")),
        _record(4, userIdentity={"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"}),
        _record(5, userIdentity={"type": "AWSService"}, sourceIPAddress="lambda.amazonaws.com"),
        _record(6, userIdentity={"type": "AWSService"}, sourceIPAddress="203.0.113.9"),
        _record(7, userIdentity={"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}),
        _record(8, userIdentity=_DROP),
        # The same identity with and without MFAUsed: the identity cache must tell them apart.
        _record(9, eventName="ConsoleLogin", additionalEventData={"MFAUsed": "Yes", "LoginTo": "x"}),
        _record(10, eventName="ConsoleLogin", additionalEventData={"MFAUsed": "No"}),
        _record(11, errorCode=403, errorMessage="Access Denied"),  # a number where text is expected
        _record(12, eventID=_DROP),  # id made from the record's text
        _record(13, recipientAccountId=_DROP),  # account from userIdentity
        _record(14, recipientAccountId="not an account!"),  # rejected
        _record(15, eventTime="yesterday"),  # rejected
        _record(16, eventTime="2025-03-01T12:00:00.250+02:00"),
        _record(17, eventTime=_DROP, **{"@timestamp": "2025-03-01T12:00:17Z"}),
        _record(18, userAgent=long_agent),
        _record(19, readOnly="false"),
        _record(20, readOnly=1),
        _record(21, userIdentity="someone"),  # rejected: not an object
        _record(22, requestParameters=None, resources=[{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}]),
        _record(23, eventName=""),  # rejected
        _record(24, awsRegion="us-east-1", recipientAccountId="444455556666"),
        _record(25, userIdentity={"type": "IAMUser", "userName": "bob", "accountId": ACCOUNT}),
        _record(26, vpcEndpointId="vpce-0123", errorCode="AccessDenied", eventName="GetObject", readOnly=None),
        _record(27, eventTime="2025-03-02T00:00:00Z", awsRegion="us-east-1"),
        _record(28, eventTime="2025-03-01T12:00:00.9999995Z"),  # seven decimals: rounded up
        _record(29, eventTime="2025-03-01T12:00:29"),  # no offset: UTC
        _record(30, eventTime="1999-12-31T23:59:59Z"),  # rejected: before 2000
        _record(31, eventTime="2025-03-01T12:00:31.1234564+00:00"),  # seven decimals: rounded down
        _record(0),  # a duplicate of the first record, later in the file
    ]


def _write_compact(path: Path, records: list[dict[str, Any]], *, gz: bool = True) -> SourceFile:
    data = orjson.dumps({"Records": records})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return SourceFile(str(path), path.stat().st_size, "1")


def _read(src: SourceFile, filters: PathFilter, *, fast: bool) -> tuple[pa.Table, list[QuarantineEntry], SourceCounts]:
    counts = SourceCounts()
    sink = norm.FastRows() if fast else None
    rows: list[norm.Row] = []
    problems: list[QuarantineEntry] = []
    for item in read_source(src, filters, counts, sink=sink):
        if type(item) is QuarantineEntry:
            problems.append(item)
        else:
            rows.append(item)  # type: ignore[arg-type]
    tables = [norm.rows_to_table(rows)]
    if sink is not None and len(sink):
        tables.append(sink.table()[0])
    table = pa.concat_tables(tables).sort_by([("source_offset", "ascending")])
    return table, sorted(problems, key=lambda p: (p.location, p.reason)), counts


def _same(src: SourceFile, filters: PathFilter | None = None) -> tuple[pa.Table, list[QuarantineEntry]]:
    filters = filters or PathFilter()
    slow_table, slow_problems, slow_counts = _read(src, filters, fast=False)
    fast_table, fast_problems, fast_counts = _read(src, filters, fast=True)
    assert fast_table.schema == slow_table.schema
    for name in slow_table.column_names:
        assert fast_table.column(name).to_pylist() == slow_table.column(name).to_pylist(), name
    assert fast_problems == slow_problems
    assert (fast_counts.records, fast_counts.quarantined, fast_counts.filtered) == (
        slow_counts.records,
        slow_counts.quarantined,
        slow_counts.filtered,
    )
    return fast_table, fast_problems


def test_compact_file_is_one_document_and_other_shapes_are_not(tmp_path: Path) -> None:
    records = [_record(0), _record(1)]
    compact = orjson.dumps({"Records": records})
    items = list(iter_records([compact], documents=True))
    assert len(items) == 1
    assert type(items[0]) is Document
    assert [orjson.loads(bytes(t)) for t in items[0].texts] == records
    # Not compact: spaces between records, another top-level key, a record not starting with eventVersion.
    spaced = json.dumps({"Records": records}).encode()
    extra = orjson.dumps({"Records": records, "Digest": "x"})
    reordered = orjson.dumps({"Records": [{"eventName": "X", **records[0]}]})
    for data in (spaced, extra, reordered):
        assert not any(type(i) is Document for i in iter_records([data], documents=True))
    # Without documents=True nothing changes for callers that want records.
    assert [i[1] for i in iter_records([compact])] == records  # type: ignore[index]


def test_every_branch_gives_the_row_path_result(tmp_path: Path) -> None:
    table, problems = _same(_write_compact(tmp_path / "a.json.gz", _odd_records()))
    reasons = {p.location: p.reason for p in problems}
    assert set(reasons) == {"record 14", "record 15", "record 21", "record 23", "record 30"}
    by_offset = {r["source_offset"]: r for r in table.to_pylist()}
    assert by_offset[11]["error_code"] == "403"
    assert by_offset[12]["event_id"].startswith("ts-")
    assert by_offset[9]["mfa"] is True
    assert by_offset[10]["mfa"] is False
    assert by_offset[5]["principal"] == "lambda.amazonaws.com"
    assert by_offset[6]["principal"] == "aws-service"
    assert by_offset[3]["actor"].endswith("/alice")
    assert by_offset[3]["mfa"] is True
    assert len(by_offset[18]["user_agent"]) == norm.MAX_FIELD_CHARS
    assert by_offset[20]["read_only"] is None
    assert by_offset[19]["read_only"] is False
    assert orjson.loads(by_offset[0]["raw"]) == _record(0)
    assert by_offset[28]["event_time"] == datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC)
    assert by_offset[29]["event_time"] == datetime(2025, 3, 1, 12, 0, 29, tzinfo=UTC)
    assert by_offset[31]["event_time"] == datetime(2025, 3, 1, 12, 0, 31, 123456, tzinfo=UTC)
    assert orjson.loads(by_offset[22]["resources"]) == [{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}]


def test_filters_drop_the_same_records(tmp_path: Path) -> None:
    src = _write_compact(tmp_path / "a.json", _odd_records(), gz=False)
    filters = PathFilter(
        since=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
        until=datetime(2025, 3, 2, tzinfo=UTC),
        accounts=frozenset({ACCOUNT}),
        regions=frozenset({"eu-west-1"}),
    )
    table, _ = _same(src, filters)
    assert set(table.column("region").to_pylist()) == {"eu-west-1"}
    assert 27 not in table.column("source_offset").to_pylist()


def test_a_record_too_big_is_quarantined_the_same(tmp_path: Path) -> None:
    big = _record(1, requestParameters={"policy": "p" * (norm.MAX_RECORD_BYTES + 10)})
    _, problems = _same(_write_compact(tmp_path / "big.json.gz", [_record(0), big, _record(2)]))
    assert [p.location for p in problems] == ["record 1"]


def test_invalid_utf8_falls_back_to_the_checked_path(tmp_path: Path) -> None:
    data = orjson.dumps({"Records": [_record(0), _record(1, userAgent="BAD")]}).replace(b'"BAD"', b'"\xff\xfe"')
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    assert not any(type(i) is Document for i in iter_records([data], documents=True))
    table, problems = _same(SourceFile(str(path), len(data), "1"))
    assert table.column("source_offset").to_pylist() == [0]
    assert [p.location for p in problems] == ["record 1"]


def test_non_ascii_text_stays_on_the_columnar_path(tmp_path: Path) -> None:
    records = [_record(0, userAgent="Bücher/1.0 ✓"), _record(1, requestParameters={"bucketName": "café-données"})]
    data = orjson.dumps({"Records": records})
    (doc,) = iter_records([data], documents=True)
    assert type(doc) is Document
    table, problems = _same(_write_compact(tmp_path / "utf8.json.gz", records))
    assert not problems
    assert table.column("user_agent").to_pylist()[0] == "Bücher/1.0 ✓"
    assert "café-données" in table.column("request_parameters").to_pylist()[1]


def test_real_captures_give_the_same_rows(real: Path) -> None:
    """Every real capture; JSON columns compared as values (AWS writes 1.6889E9 where orjson writes 1688900000.0)."""
    files = sorted(p for p in real.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz", ".jsonl")))
    documents = 0
    for path in files:
        src = SourceFile(str(path), path.stat().st_size, "1")
        data = path.read_bytes()
        documents += any(type(i) is Document for i in iter_records([data], documents=True))
        slow, slow_problems, _ = _read(src, PathFilter(), fast=False)
        fast, fast_problems, _ = _read(src, PathFilter(), fast=True)
        assert fast_problems == slow_problems, path
        for name in slow.column_names:
            a, b = fast.column(name).to_pylist(), slow.column(name).to_pylist()
            if name in ("request_parameters", "resources"):
                a = [None if v is None else orjson.loads(v) for v in a]
                b = [None if v is None else orjson.loads(v) for v in b]
            assert a == b, (path, name)
    assert documents >= 5  # the fast path was taken for the delivery files among them
