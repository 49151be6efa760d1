"""Helpers of the fault-injection suite: process trees, CloudTrail builders, store counts."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson

from trailsight.store.lake import events_sql
from trailsight.store.layout import StoreLayout


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
    """Write ``{"Records": records}`` (compact, as AWS writes it) to ``folder/name.json[.gz]``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps({"Records": records})
    path = folder / (f"{name}.json.gz" if gz else f"{name}.json")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def s3_layout(root: Path, account: str, region: str, day: str) -> Path:
    """The S3-layout folder of one account, region and day (``YYYY-MM-DD``)."""
    y, m, d = day.split("-")
    return root / "AWSLogs" / account / "CloudTrail" / region / y / m / d


def lake_rows(store: Path) -> int:
    """Rows in the store's lake (registered files only)."""
    return len(lake_ids(store, distinct=False))


def lake_ids(store: Path, *, distinct: bool = True) -> list[str]:
    """The event ids in the store's lake."""
    if not (store / "state.duckdb").exists():
        return []
    sql, params = events_sql(StoreLayout(store))
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW events AS {sql}", params)
        rows = con.execute("SELECT event_id FROM events").fetchall()
    finally:
        con.close()
    ids = [r[0] for r in rows]
    return sorted(set(ids)) if distinct else ids


def children(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """Wait until every pid has exited; return those still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return left
        time.sleep(0.05)
    return {p for p in pids if alive(p)}
