"""Helpers of the fault-injection suite: process trees, CloudTrail builders, store counts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb

from trailkit import event, s3_layout, write_trail
from trailsight.store.lake import events_sql
from trailsight.store.layout import StoreLayout


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


__all__ = ["alive", "children", "event", "lake_ids", "lake_rows", "s3_layout", "wait_gone", "write_trail"]
