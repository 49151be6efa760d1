"""Read the lake's events for a time range as an Ibis table (DuckDB backend).

Only files registered in the store (``trailsight.store.lake.lake_files``) belong to the lake;
partition folders (``event_date=YYYY-MM-DD``) outside the wanted days are skipped before any
file is opened, so memory follows the range asked for, not the lake's size.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
from ibis.backends.duckdb import Backend as DuckDBBackend

from trailsight.errors import StoreError
from trailsight.schema import EVENT_COLUMNS, EVENT_SCHEMA
from trailsight.store.layout import StoreLayout

_DATE_DIR = re.compile(r"event_date=(\d{4}-\d{2}-\d{2})")


def all_lake_files(layout: StoreLayout) -> list[Path]:
    """Every Parquet file of the lake: the registered ones when the store keeps a register."""
    try:
        lake_module = importlib.import_module("trailsight.store.lake")
    except ModuleNotFoundError:  # pragma: no cover - before the lake module exists
        lake_module = None
    lister = getattr(lake_module, "lake_files", None)
    if lister is not None and layout.state.exists():
        return sorted(Path(p) for p in lister(layout))
    return sorted(layout.lake.glob("account_id=*/event_date=*/*.parquet"))


def file_date(path: Path) -> date | None:
    """The ``event_date`` partition a lake file belongs to, or None if its path does not say."""
    match = _DATE_DIR.search(str(path))
    return date.fromisoformat(match.group(1)) if match else None


def event_days(since: datetime, until: datetime, forget_days: int) -> tuple[date, date]:
    """The lake days a range reads: ``forget_days`` (and one) before ``since``, up to ``until``'s day."""
    return since.date() - timedelta(days=forget_days + 1), (until - timedelta(microseconds=1)).date()


def lake_files_between(layout: StoreLayout, first: date, last: date, files: Sequence[Path] | None = None) -> list[Path]:
    """The lake files whose partition day lies in ``[first, last]`` (of ``files``, default the whole lake)."""
    out = []
    for path in all_lake_files(layout) if files is None else files:
        day = file_date(path)
        if day is None or first <= day <= last:
            out.append(path)
    return out


def lake_day_range(layout: StoreLayout) -> tuple[date, date] | None:
    """First and last partition day of the lake, or None if it is empty."""
    days = [d for d in (file_date(p) for p in all_lake_files(layout)) if d is not None]
    return (min(days), max(days)) if days else None


def open_events(
    con: DuckDBBackend,
    layout: StoreLayout,
    since: datetime,
    until: datetime,
    forget_days: int,
    table_name: str = "events",
    files: Sequence[Path] | None = None,
) -> ir.Table:
    """Register the events from ``forget_days`` before ``since`` up to ``until`` as view ``table_name``.

    ``files`` is the lake's file list when the caller already has it (:func:`all_lake_files`).
    """
    if not layout.lake.is_dir():
        raise StoreError(f"{layout.root}: not a trailsight store (no lake/ folder); run `trailsight ingest` first")
    first, last = event_days(since, until, forget_days)
    files = lake_files_between(layout, first, last, files)
    if not files:
        raise StoreError(f"{layout.lake}: no events between {first} and {last}")
    return read_events(con, files, table_name)


def read_events(con: DuckDBBackend, files: Sequence[Path | str], table_name: str) -> ir.Table:
    """Lake ``files`` as view ``table_name`` of ``con``, with the event columns (the partition path adds none)."""
    table = con.read_parquet(
        [str(p) for p in files], table_name=table_name, hive_partitioning=False, union_by_name=True
    )
    # A lake written before a column was added to the schema reads that column as null.
    present = set(table.columns)
    return table.select(
        *[c if c in present else ibis.null(ibis.dtype(EVENT_SCHEMA.field(c).type)).name(c) for c in EVENT_COLUMNS]
    )


def view_files(db: Any, files: Sequence[Path], name: str) -> None:
    """Make lake ``files`` the temporary view ``name`` of the DuckDB connection ``db``.

    The same view :func:`read_events` registers through Ibis, for a ``cursor()`` of the run's
    database that a worker thread reads with.
    """
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    db.execute(
        f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM '
        f"read_parquet([{paths}], hive_partitioning = false, union_by_name = true)"
    )


@contextmanager
def quiet_ibis() -> Iterator[None]:
    """Silence the deprecation warnings ibis 12 triggers inside duckdb 2 (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*fetch_arrow_table.*", category=DeprecationWarning)
        yield


def connect(
    threads: int | None = None,
    memory_limit: str | None = None,
    database: Path | None = None,
    read_only: bool = False,
) -> DuckDBBackend:
    """A DuckDB backend for feature computation: in memory, or a scratch ``database`` file.

    With ``database``, tables live in that file (compressed; DuckDB evicts them from memory as it
    needs) and operators spill beside it, so large ranges cost disk rather than RAM. ``read_only``
    opens an existing ``database`` for reading (several processes may).
    """
    if database is None:
        con = ibis.duckdb.connect()
    elif read_only:
        con = ibis.duckdb.connect(database=str(database), read_only=True)
    else:
        con = ibis.duckdb.connect(database=str(database))
        spill = str(database.parent / "spill").replace("'", "''")
        con.raw_sql(f"SET temp_directory = '{spill}'")
    # Day and hour numbers come from UTC epochs; keep DuckDB's session in UTC whatever the host says.
    con.raw_sql("SET TimeZone = 'UTC'")
    if threads is not None:
        con.raw_sql(f"SET threads = {int(threads)}")
    if memory_limit is not None:
        con.raw_sql(f"SET memory_limit = '{memory_limit}'")
    return con
