"""The ingest side of the state database (``S/state.duckdb``): manifest, event ids, runs.

Tables owned here (created with ``CREATE TABLE IF NOT EXISTS``)::

    ingest_manifest(source, size, version, run_id, records, quarantined, ingested_at)
        one row per source file read to the end; a file whose (source, size, version)
        is listed is skipped by the next ingest. ``version`` is the mtime in ns or the S3 ETag.
    event_ids(event_id, event_date, batch_id)
        every event id in the lake, for de-duplication (CloudTrail delivers duplicates).
    ingest_runs(run_id, started_at, finished_at, paths, files, skipped_files, records,
                new, duplicates, quarantined, filtered, seconds)

DuckDB allows one writing process *or* several read-only ones, so connections are opened
for the length of one write and closed; :func:`connect` retries while another process
holds the lock. Every query is parameterised.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

import duckdb
import pyarrow as pa

from trailsight.errors import StoreError
from trailsight.store.layout import StoreLayout

LOCK_WAIT_SECONDS: Final = 60.0

STATE_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS ingest_manifest (
        source VARCHAR NOT NULL,
        size BIGINT NOT NULL,
        version VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        records BIGINT NOT NULL,
        quarantined BIGINT NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS event_ids (
        event_id VARCHAR NOT NULL,
        event_date DATE NOT NULL,
        batch_id VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ingest_runs (
        run_id VARCHAR PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        paths VARCHAR,
        files BIGINT,
        skipped_files BIGINT,
        records BIGINT,
        new BIGINT,
        duplicates BIGINT,
        quarantined BIGINT,
        filtered BIGINT,
        seconds DOUBLE
    )
    """,
)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("could not set" in text or "conflicting" in text)


@contextmanager
def connect(layout: StoreLayout, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the state database, retrying up to :data:`LOCK_WAIT_SECONDS` while it is locked."""
    if read_only and not layout.state.exists():
        raise StoreError(f"{layout.state}: no state database (run `trailsight ingest` first)")
    if not read_only:
        layout.root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(layout.state), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise StoreError(f"{layout.state}: cannot open state database: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    try:
        yield con
    finally:
        con.close()


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables this module owns."""
    for ddl in STATE_DDL:
        con.execute(ddl)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether table ``name`` exists in the main schema."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?", [name]
    ).fetchall()
    return bool(rows and rows[0][0])


def known_sources(con: duckdb.DuckDBPyConnection, sources: Sequence[tuple[str, int, str]]) -> set[str]:
    """Keys of ``sources`` (key, size, version) already in the manifest with the same size and version."""
    if not sources or not table_exists(con, "ingest_manifest"):
        return set()
    probe = pa.table(
        {
            "source": pa.array([s[0] for s in sources], pa.string()),
            "size": pa.array([s[1] for s in sources], pa.int64()),
            "version": pa.array([s[2] for s in sources], pa.string()),
        }
    )
    con.register("_probe_sources", probe)
    try:
        rows = con.execute(
            "SELECT DISTINCT p.source FROM _probe_sources p SEMI JOIN ingest_manifest m "
            "ON p.source = m.source AND p.size = m.size AND p.version = m.version"
        ).fetchall()
    finally:
        con.unregister("_probe_sources")
    return {r[0] for r in rows}


def existing_event_ids(con: duckdb.DuckDBPyConnection, ids: pa.Array) -> pa.Array:
    """Those of ``ids`` already recorded in ``event_ids``."""
    if len(ids) == 0:
        return pa.array([], pa.string())
    con.register("_probe_ids", pa.table({"event_id": ids}))
    try:
        found = con.sql(
            "SELECT p.event_id FROM _probe_ids p SEMI JOIN event_ids e ON p.event_id = e.event_id"
        ).to_arrow_table()
    finally:
        con.unregister("_probe_ids")
    column = found.column("event_id")
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def insert_event_ids(con: duckdb.DuckDBPyConnection, ids: pa.Table, batch_id: str) -> None:
    """Record ``ids`` (columns event_id, event_date) as belonging to batch ``batch_id``."""
    if ids.num_rows == 0:
        return
    con.register("_new_ids", ids)
    try:
        con.execute("INSERT INTO event_ids SELECT event_id, event_date, ? FROM _new_ids", [batch_id])
    finally:
        con.unregister("_new_ids")


def insert_manifest(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    """Insert manifest rows (a table with the ``ingest_manifest`` columns, in order)."""
    if rows.num_rows == 0:
        return
    con.register("_manifest_rows", rows)
    try:
        con.execute("INSERT INTO ingest_manifest SELECT * FROM _manifest_rows")
    finally:
        con.unregister("_manifest_rows")
