"""The ingest side of the state database (``S/state.duckdb``): manifest, event ids, runs.

Tables owned here (created with ``CREATE TABLE IF NOT EXISTS``)::

    ingest_manifest(source, size, version, run_id, records, quarantined, ingested_at, filtered, scope)
        one row per source file read to the end; a file whose (source, size, version) is listed
        is skipped by the next ingest — unless that row's run left ``filtered`` records out by a
        filter (``scope``, :meth:`~trailsight.ingest.sources.PathFilter.scope`) that does not
        cover the next run's. ``version`` is the mtime in ns or the S3 ETag.
    event_keys(k_hi, k_lo, event_date, batch_id)
        the 128-bit key of every event id in the lake with its event day, for de-duplication
        (CloudTrail delivers duplicates, with the same event time): an event is a duplicate when
        its id is recorded for the same event day. See :func:`event_keys`. Two BIGINTs join,
        compress and checkpoint much faster than the 36-character texts (a store of the older
        ``event_ids(event_id, ...)`` layout is converted the first time an ingest opens it).
        Keys are kept for the ``dedup_days`` days before the newest event day
        (:func:`prune_event_keys`).
    event_keys_horizon(pruned_before)
        at most one row: the keys of event days before it are gone; a record of such a day is
        checked against the event ids of its lake partition instead (:func:`seen_in_lake`).
    ingest_runs(run_id, started_at, finished_at, paths, files, skipped_files, records,
                new, duplicates, quarantined, filtered, seconds)

DuckDB allows one writing process *or* several read-only ones, so connections are opened
for the length of one write and closed; :func:`connect` retries while another process
holds the lock. Every query is parameterised.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Final

import duckdb
import numpy as np
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
    # Added later: the records of the file a filter left out, and that filter.
    "ALTER TABLE ingest_manifest ADD COLUMN IF NOT EXISTS filtered BIGINT DEFAULT 0",
    "ALTER TABLE ingest_manifest ADD COLUMN IF NOT EXISTS scope VARCHAR DEFAULT ''",
    """
    CREATE TABLE IF NOT EXISTS event_keys (
        k_hi BIGINT NOT NULL,
        k_lo BIGINT NOT NULL,
        event_date DATE NOT NULL,
        batch_id VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS event_keys_horizon (
        pruned_before DATE NOT NULL
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


#: A relation name that can be put into SQL as it is: letters, digits and underscores.
_PLAIN_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def raw_connection(con: object) -> duckdb.DuckDBPyConnection:
    """The DuckDB connection of a DuckDB connection or of an Ibis DuckDB backend."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return con
    inner = getattr(con, "con", None)
    if isinstance(inner, duckdb.DuckDBPyConnection):
        return inner
    raise StoreError(f"expected a DuckDB connection, got {type(con).__name__}")


def plain_relation(name: str, what: str) -> str:
    """``name``, checked to be a plain SQL name before a query is built with it; else a
    :class:`StoreError` saying which reader (``what``) was given what."""
    if not _PLAIN_NAME.match(name):
        raise StoreError(f"{what}: events relation {name!r} is not a plain SQL name")
    return name


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


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` … ``COMMIT``, or ``ROLLBACK`` and re-raise when the block fails (a failing
    rollback does not hide the error that caused it)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        with suppress(Exception):
            con.execute("ROLLBACK")
        raise


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables this module owns (converting an ``event_ids`` table of an older store)."""
    for ddl in STATE_DDL:
        con.execute(ddl)
    if table_exists(con, "event_ids"):
        _convert_event_ids(con)


def _convert_event_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Move the texts of the older ``event_ids`` table into ``event_keys`` as keys, in one transaction."""
    with transaction(con):
        (top,) = con.execute("SELECT max(rowid) FROM event_ids").fetchall()[0]
        last = -1 if top is None else int(top)
        step = 1 << 18
        for start in range(0, last + 1, step):  # a slice of rows at a time: memory stays flat
            batch = con.sql(
                "SELECT event_id, event_date, batch_id FROM event_ids WHERE rowid >= ? AND rowid < ?",
                params=[start, start + step],
            ).to_arrow_table()
            hi, lo = event_keys(batch.column(0))
            rows = pa.table({"k_hi": hi, "k_lo": lo, "event_date": batch.column(1), "batch_id": batch.column(2)})
            con.register("_old_ids", rows)
            try:
                con.execute("INSERT INTO event_keys SELECT * FROM _old_ids")
            finally:
                con.unregister("_old_ids")
        con.execute("DROP TABLE event_ids")


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether table ``name`` exists in the main schema."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?", [name]
    ).fetchall()
    return bool(rows and rows[0][0])


def known_sources(
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[tuple[str, int, str]],
    covers: Callable[[str], bool] | None = None,
) -> set[str]:
    """Keys of ``sources`` (key, size, version) already in the manifest with the same size and version.

    A row whose run filtered records out counts only when ``covers(scope)`` says that run's
    filter kept everything the caller's filter keeps (no ``covers``: the caller has no filter).
    """
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
            "SELECT DISTINCT p.source, coalesce(m.filtered, 0) = 0 AS whole, m.scope FROM _probe_sources p "
            "JOIN ingest_manifest m ON p.source = m.source AND p.size = m.size AND p.version = m.version"
        ).fetchall()
    finally:
        con.unregister("_probe_sources")
    return {source for source, whole, scope in rows if whole or (covers is not None and covers(scope or ""))}


# A canonical event id (a lowercase UUID, as CloudTrail writes them): 36 characters, dashes at
# 8, 13, 18 and 23, lowercase hex elsewhere. Each byte maps to its nibble, a dash to _DASH,
# anything else to _BAD.
_BAD: Final = 16
_DASH: Final = 32
_NIBBLE: Final = np.full(256, _BAD, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_NIBBLE[ord("-")] = _DASH
_HEX_AT: Final = np.r_[0:8, 9:13, 14:18, 19:23, 24:36]
_DASH_AT: Final = np.array([8, 13, 18, 23])
_UUID_CHARS: Final = 36


def event_keys(ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit keys of event ids, as (high, low) int64 halves.

    A canonical UUID (lowercase, with its dashes: what CloudTrail writes) keys as its own 128
    bits, worked out for the whole column at once; any other text (upper case, not a UUID, null
    as the empty text) as the first 16 bytes of its BLAKE2b digest. Equal texts give equal keys,
    and different texts different keys but with a chance of about 2**-128 a pair.
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks != 1 else ids.chunk(0)
    if ids.type != pa.string():
        ids = ids.cast(pa.string())
    n = len(ids)
    hi = np.zeros(n, np.int64)
    lo = np.zeros(n, np.int64)
    if n == 0:
        return hi, lo
    offsets = np.frombuffer(ids.buffers()[1], np.int32, n + 1, ids.offset * 4)
    candidate = np.diff(offsets) == _UUID_CHARS
    if ids.null_count:
        candidate &= ids.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(candidate)
    other = np.flatnonzero(~candidate)
    if len(rows):
        data = np.frombuffer(ids.buffers()[2], np.uint8)
        if len(rows) == n and int(offsets[-1] - offsets[0]) == n * _UUID_CHARS:
            text = data[offsets[0] : offsets[-1]].reshape(n, _UUID_CHARS)
        else:
            text = data[offsets[rows][:, None] + np.arange(_UUID_CHARS)]
        nibbles = _NIBBLE[text]
        hexes = nibbles[:, _HEX_AT]
        ok = (hexes.max(axis=1) < _BAD) & (nibbles[:, _DASH_AT] == _DASH).all(axis=1)
        packed = np.ascontiguousarray((hexes[:, 0::2] << 4) | hexes[:, 1::2]).view(">u8")
        hi[rows] = packed[:, 0].astype(np.uint64).view(np.int64)
        lo[rows] = packed[:, 1].astype(np.uint64).view(np.int64)
        if not ok.all():
            other = np.union1d(other, rows[~ok])
    if len(other):
        for i, text in zip(other.tolist(), ids.take(pa.array(other)).to_pylist(), strict=True):
            digest = hashlib.blake2b((text or "").encode(), digest_size=16).digest()
            hi[i] = int.from_bytes(digest[:8], "big", signed=True)
            lo[i] = int.from_bytes(digest[8:], "big", signed=True)
    return hi, lo


def first_of_keys(hi: np.ndarray, lo: np.ndarray, days: np.ndarray) -> np.ndarray | None:
    """A mask keeping the first row of each (key, event day); None when all differ (the usual case)."""
    n = len(lo)
    if n < 2:
        return None
    ordered = np.sort(lo)  # a sort is cheaper than Arrow's count_distinct here (docs/scaling.md)
    if (ordered[1:] != ordered[:-1]).all():
        return None
    order = np.lexsort((np.arange(n), days, hi, lo))
    s_hi, s_lo, s_day = hi[order], lo[order], days[order]
    new = np.ones(n, bool)
    new[1:] = (s_hi[1:] != s_hi[:-1]) | (s_lo[1:] != s_lo[:-1]) | (s_day[1:] != s_day[:-1])
    mask = np.zeros(n, bool)
    mask[order[new]] = True
    return mask


def seen_event_keys(con: duckdb.DuckDBPyConnection, hi: np.ndarray, lo: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Positions (sorted) of the (key, event day) pairs already recorded in ``event_keys``.

    With the day in the join, DuckDB passes the batch's first and last day down to the scan of
    ``event_keys`` and skips the row groups of other days, so a batch's probe costs about the
    same however many days of keys the store keeps.
    """
    return _positions_in(con, "event_keys", hi, lo, days)


def _positions_in(
    con: duckdb.DuckDBPyConnection, keys: str, hi: np.ndarray, lo: np.ndarray, days: np.ndarray
) -> np.ndarray:
    """Positions (sorted) of the (hi, lo, day) triples that table ``keys`` (columns k_hi, k_lo,
    event_date) holds; ``days`` are int32 days since the epoch."""
    if len(hi) == 0:
        return np.zeros(0, np.int64)
    probe = pa.table(
        {
            "i": np.arange(len(hi), dtype=np.int64),
            "k_hi": hi,
            "k_lo": lo,
            "event_date": pa.array(days, pa.int32()).cast(pa.date32()),
        }
    )
    con.register("_probe_keys", probe)
    try:
        found = con.sql(
            f"SELECT p.i FROM _probe_keys p SEMI JOIN {keys} e "
            "ON p.k_hi = e.k_hi AND p.k_lo = e.k_lo AND p.event_date = e.event_date"
        ).to_arrow_table()
    finally:
        con.unregister("_probe_keys")
    return np.sort(found.column("i").to_numpy())


def insert_event_keys(
    con: duckdb.DuckDBPyConnection, hi: np.ndarray, lo: np.ndarray, days: np.ndarray, batch_id: str
) -> None:
    """Record keys (with their event days, int32 days since the epoch) as belonging to batch ``batch_id``."""
    if len(hi) == 0:
        return
    con.register(
        "_new_keys", pa.table({"k_hi": hi, "k_lo": lo, "event_date": pa.array(days, pa.int32()).cast(pa.date32())})
    )
    try:
        con.execute("INSERT INTO event_keys SELECT k_hi, k_lo, event_date, ? FROM _new_keys", [batch_id])
    finally:
        con.unregister("_new_keys")


def key_horizon(con: duckdb.DuckDBPyConnection) -> int | None:
    """The first event day (days since the epoch) whose keys are all still in ``event_keys``; None: all are."""
    rows = con.execute("SELECT max(pruned_before) - DATE '1970-01-01' FROM event_keys_horizon").fetchall()
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def prune_event_keys(con: duckdb.DuckDBPyConnection, keep_days: int) -> None:
    """Drop the keys of event days more than ``keep_days`` before the newest one.

    CloudTrail repeats a record within hours of the first delivery, with the same time, so
    recent keys catch the repeats; a record of an older day is checked against its partition's
    event ids in the lake instead (exact, only slower), so nothing is lost or doubled either way.
    """
    rows = con.execute("SELECT max(event_date) - DATE '1970-01-01' FROM event_keys").fetchall()
    if not rows or rows[0][0] is None:
        return
    cut = int(rows[0][0]) - keep_days
    horizon = key_horizon(con)
    moved = horizon is None or cut > horizon
    if horizon is not None and not moved:
        cut = horizon  # the horizon stays; keys a backfill added below it go again
    with transaction(con):
        con.execute("DELETE FROM event_keys WHERE event_date < DATE '1970-01-01' + ?::INTEGER", [cut])
        if moved:
            con.execute("DELETE FROM event_keys_horizon")
            con.execute("INSERT INTO event_keys_horizon VALUES (DATE '1970-01-01' + ?::INTEGER)", [cut])


def seen_in_lake(
    con: duckdb.DuckDBPyConnection,
    root: str,
    partitions: Sequence[tuple[str, int]],
    hi: np.ndarray,
    lo: np.ndarray,
    days: np.ndarray,
) -> np.ndarray:
    """Positions (sorted) of the (key, event day) pairs found among the event ids and days of the
    registered lake files of ``partitions`` ((account, day since the epoch) pairs); ``root`` is
    the store folder."""
    if len(hi) == 0 or not partitions:
        return np.zeros(0, np.int64)
    wanted = pa.table(
        {
            "account_id": pa.array([a for a, _ in partitions], pa.string()),
            "event_date": pa.array([d for _, d in partitions], pa.int32()).cast(pa.date32()),
        }
    )
    con.register("_old_partitions", wanted)
    try:
        rows = con.execute(
            "SELECT f.path FROM lake_files f SEMI JOIN _old_partitions w "
            "ON f.account_id = w.account_id AND f.event_date = w.event_date ORDER BY f.path"
        ).fetchall()
    finally:
        con.unregister("_old_partitions")
    if not rows:
        return np.zeros(0, np.int64)
    files = [f"{root}/{r[0]}" for r in rows]
    ids = con.sql(
        "SELECT event_id, event_date FROM read_parquet(?, hive_partitioning = false)", params=[files]
    ).to_arrow_table()
    k_hi, k_lo = event_keys(ids.column("event_id"))
    con.register("_lake_keys", pa.table({"k_hi": k_hi, "k_lo": k_lo, "event_date": ids.column("event_date")}))
    try:
        return _positions_in(con, "_lake_keys", hi, lo, days)
    finally:
        con.unregister("_lake_keys")


def insert_manifest(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    """Insert manifest rows (a table with the ``ingest_manifest`` columns, in order)."""
    if rows.num_rows == 0:
        return
    con.register("_manifest_rows", rows)
    try:
        con.execute("INSERT INTO ingest_manifest BY NAME SELECT * FROM _manifest_rows")
    finally:
        con.unregister("_manifest_rows")
