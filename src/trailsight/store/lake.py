"""The Parquet lake: writing batches atomically, and reading only what belongs to it.

Layout (see :mod:`trailsight.store.layout`)::

    S/lake/account_id=<acct>/event_date=<YYYY-MM-DD>/<batch>.parquet

Files are zstd-compressed Parquet with exactly :data:`trailsight.schema.EVENT_SCHEMA`
(the partition columns are stored in the file too, so read with ``hive_partitioning=false``),
sorted by event time within a file.

A batch is written under a hidden temporary name, flushed to disk and renamed into place;
it joins the lake only when :func:`register_files` lists it in the ``lake_files`` table,
in the same DuckDB transaction that records its event ids and manifest rows. A file that
is not listed (left by a killed run) is an orphan: readers never see it, and
:func:`sweep_orphans` (run at the start of every ingest) deletes it.

Readers: :func:`lake_files` lists the registered files, :func:`events_sql` gives the SQL
(and parameters) of the events in a time range, :func:`open_events` a DuckDB relation.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trailsight.errors import StoreError
from trailsight.schema import EVENT_SCHEMA
from trailsight.store import state
from trailsight.store.layout import StoreLayout

LAKE_FILES_DDL: Final = """
CREATE TABLE IF NOT EXISTS lake_files (
    path VARCHAR PRIMARY KEY,
    account_id VARCHAR NOT NULL,
    event_date DATE NOT NULL,
    rows BIGINT NOT NULL,
    batch_id VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
)
"""

TMP_SUFFIX: Final = ".tmp"

_LONG_TEXT: Final = frozenset(
    {"raw", "request_parameters", "resources", "user_agent", "error_message", "principal_arn"}
)
_STATS_COLUMNS: Final = [n for n in EVENT_SCHEMA.names if n not in _LONG_TEXT]
_DICT_COLUMNS: Final = [
    n for n in EVENT_SCHEMA.names if n not in {"raw", "request_parameters", "event_id", "event_time", "source_offset"}
]

_DUCK_TYPES: Final = {
    pa.string(): "VARCHAR",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.date32(): "DATE",
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
}


@dataclass(frozen=True, slots=True)
class LakeFile:
    """One Parquet file of a batch: its path relative to the store, partition and row count."""

    path: str
    account_id: str
    event_date: date
    rows: int


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``lake_files`` if missing."""
    con.execute(LAKE_FILES_DDL)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_partitions(table: pa.Table) -> list[tuple[str, date, pa.Table]]:
    """``table`` as one part per (account, day) partition, in partition order; rows keep their order.

    Rows come grouped by delivery file, so a partition is usually a few runs of consecutive rows:
    then its part is those runs as slices of ``table`` (nothing copied). Only a table whose
    partitions are finely interleaved is reordered, with one stable sort and one take.
    """
    n = table.num_rows
    if n == 0:
        return []
    account = table.column("account_id")
    day = table.column("event_date")
    accounts = pc.min_max(account)
    days = pc.min_max(day)
    if accounts["min"] == accounts["max"] and days["min"] == days["max"]:
        return [(str(accounts["min"].as_py()), days["min"].as_py(), table)]
    encoded = pc.dictionary_encode(account).combine_chunks()
    names = encoded.dictionary.to_pylist()
    day_numbers = day.cast(pa.int32()).to_numpy().astype(np.int64)
    first_day = int(day_numbers.min())
    span = int(day_numbers.max()) - first_day + 1
    key = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64) * span + (day_numbers - first_day)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    ends = np.append(starts[1:], n)
    distinct = np.unique(key[starts])

    def partition(k: int) -> tuple[str, date]:
        return str(names[k // span]), date.fromordinal(_EPOCH_ORDINAL + first_day + k % span)

    order = sorted(range(len(distinct)), key=lambda i: partition(int(distinct[i])))
    if len(starts) > 4 * len(distinct) + 16:
        # Interleaved: sort the rows by partition once, then each part is one slice.
        rows = np.argsort(key, kind="stable")
        taken = table.take(pa.array(rows))
        bounds = np.searchsorted(key[rows], distinct)
        ends_at = np.append(bounds[1:], n)
        return [(*partition(int(distinct[i])), taken.slice(int(bounds[i]), int(ends_at[i] - bounds[i]))) for i in order]
    out = []
    run_keys = key[starts]
    for i in order:
        runs = np.flatnonzero(run_keys == distinct[i])
        slices = [table.slice(int(starts[r]), int(ends[r] - starts[r])) for r in runs]
        out.append((*partition(int(distinct[i])), slices[0] if len(slices) == 1 else pa.concat_tables(slices)))
    return out


_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def write_temp(layout: StoreLayout, table: pa.Table, account_id: str, day: date, stem: str) -> Path:
    """Write one partition's rows under a hidden temporary name in its folder.

    The file is not part of the lake until :func:`publish` renames it and :func:`register_files`
    lists it; until then readers ignore it and the next ingest deletes it.
    """
    folder = layout.partition(account_id, day.isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}.parquet{TMP_SUFFIX}"
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        row_group_size=128 * 1024,
        # Min/max statistics and dictionaries of long unique text cost time and buy nothing.
        write_statistics=_STATS_COLUMNS,
        use_dictionary=_DICT_COLUMNS,
    )
    return tmp


def sync_files(paths: list[Path]) -> None:
    """Flush files to disk, several at a time (the waits are I/O, not CPU)."""
    if len(paths) == 1:
        _fsync(paths[0])
    elif paths:
        with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
            list(pool.map(_fsync, paths))


def publish(
    layout: StoreLayout, tmp: Path, name: str, account_id: str, day: date, rows: int, *, synced: bool = False
) -> LakeFile:
    """Rename a temporary file to ``<name>.parquet`` in its folder; return it (still unregistered).

    The data is flushed to disk first (unless ``synced`` says :func:`sync_files` did it), so the
    name — and then the register — never points at data that a crash could lose.
    """
    final = tmp.with_name(f"{name}.parquet")
    if not synced:
        _fsync(tmp)
    tmp.replace(final)
    return LakeFile(path=final.relative_to(layout.root).as_posix(), account_id=account_id, event_date=day, rows=rows)


def write_batch(layout: StoreLayout, table: pa.Table, batch_id: str) -> list[LakeFile]:
    """Write ``table`` as one Parquet file per (account, day) partition; return them, unregistered."""
    written: list[LakeFile] = []
    for k, (account, day, part) in enumerate(split_partitions(table)):
        tmp = write_temp(layout, part, account, day, f"{batch_id}-{k:04d}")
        written.append(publish(layout, tmp, f"{batch_id}-{k:04d}", account, day, part.num_rows))
    return written


def register_files(con: duckdb.DuckDBPyConnection, files: list[LakeFile], batch_id: str) -> None:
    """List ``files`` in ``lake_files`` (inside the caller's transaction)."""
    if not files:
        return
    now = datetime.now(UTC)
    rows = pa.table(
        {
            "path": pa.array([f.path for f in files], pa.string()),
            "account_id": pa.array([f.account_id for f in files], pa.string()),
            "event_date": pa.array([f.event_date for f in files], pa.date32()),
            "rows": pa.array([f.rows for f in files], pa.int64()),
            "batch_id": pa.array([batch_id] * len(files), pa.string()),
            "created_at": pa.array([now] * len(files), pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("_lake_rows", rows)
    try:
        con.execute("INSERT INTO lake_files SELECT * FROM _lake_rows")
    finally:
        con.unregister("_lake_rows")


def registered_paths(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Relative paths of every registered lake file."""
    if not state.table_exists(con, "lake_files"):
        return set()
    return {r[0] for r in con.execute("SELECT path FROM lake_files").fetchall()}


def sweep_orphans(layout: StoreLayout, registered: set[str]) -> int:
    """Delete Parquet and temporary files under the lake that ``registered`` does not list.

    Only call this while holding the store's ingest lock. Returns how many were removed.
    """
    if not layout.lake.is_dir():
        return 0
    removed = 0
    for folder, _dirs, names in os.walk(layout.lake):
        for name in names:
            if not (name.endswith(".parquet") or name.endswith(TMP_SUFFIX)):
                continue
            path = Path(folder) / name
            if path.relative_to(layout.root).as_posix() in registered:
                continue
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _day_bounds(since: datetime | None, until: datetime | None) -> tuple[date | None, date | None]:
    first = since.astimezone(UTC).date() if since is not None else None
    last = (until.astimezone(UTC) - timedelta(microseconds=1)).date() if until is not None else None
    return first, last


def lake_files(
    layout: StoreLayout,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    accounts: list[str] | None = None,
) -> list[Path]:
    """Absolute paths of the registered lake files, optionally only the days in ``[since, until)``.

    An empty list when the store has no state database yet.
    """
    if not layout.state.exists():
        return []
    first, last = _day_bounds(since, until)
    sql = "SELECT path FROM lake_files WHERE true"
    params: list[Any] = []
    if first is not None:
        sql += " AND event_date >= ?"
        params.append(first)
    if last is not None:
        sql += " AND event_date <= ?"
        params.append(last)
    if accounts:
        sql += " AND account_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(accounts))
    sql += " ORDER BY event_date, account_id, path"
    with state.connect(layout, read_only=True) as con:
        if not state.table_exists(con, "lake_files"):
            return []
        rows = con.execute(sql, params).fetchall()
    return [layout.root / r[0] for r in rows]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def empty_events_sql() -> str:
    """SQL for an empty relation with the event columns and types."""
    cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {f.name}" for f in EVENT_SCHEMA)
    return f"SELECT {cols} WHERE false"


def events_sql(
    layout: StoreLayout,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    accounts: list[str] | None = None,
) -> tuple[str, list[Any]]:
    """SQL and parameters selecting the lake's events with ``since <= event_time < until``.

    Only registered files are read (``read_parquet([...], hive_partitioning=false)``); days
    outside the range are not opened.
    """
    files = lake_files(layout, since, until, accounts=accounts)
    if not files:
        return empty_events_sql(), []
    listing = ", ".join(_quote(str(p)) for p in files)
    sql = f"SELECT * FROM read_parquet([{listing}], hive_partitioning=false) WHERE true"
    params: list[Any] = []
    if since is not None:
        sql += " AND event_time >= ?"
        params.append(since.astimezone(UTC))
    if until is not None:
        sql += " AND event_time < ?"
        params.append(until.astimezone(UTC))
    if accounts:
        sql += " AND account_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(accounts))
    return sql, params


def open_events(
    con: duckdb.DuckDBPyConnection,
    layout: StoreLayout,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    accounts: list[str] | None = None,
) -> duckdb.DuckDBPyRelation:
    """A DuckDB relation over the lake's events in ``[since, until)`` on connection ``con``."""
    sql, params = events_sql(layout, since, until, accounts=accounts)
    try:
        return con.sql(sql, params=params)
    except duckdb.Error as exc:
        raise StoreError(f"{layout.lake}: cannot read the lake: {exc}") from None
