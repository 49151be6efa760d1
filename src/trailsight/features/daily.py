"""Daily profiles built day by day with numpy: what the feature profiles and the context sum up.

:func:`~trailsight.features.asof.build_profiles` states the profiles in Ibis: per pair and day
the events, first and last times and distinct hours (:func:`~trailsight.features.asof.pair_daily`),
then sums over the forget window (:func:`~trailsight.features.asof.pair_window`). The daily
part is a group-by over the whole history. Here it runs one lake day at a time: the day's
events are read (only the columns the profiles need), grouped with integer codes, and reduced
to small daily tables, so memory follows one day however long the history is. The windowed
sums then run in numpy too (:func:`windowed`: one sort per profile, then prefix sums), and the
context aggregates (:func:`~trailsight.features.behaviour.context_aggregates`) come from the same
pass. ``tests/features/test_chunk.py`` checks all three against the Ibis expressions, table by table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trailsight.features.asof import (
    ARROW_KEYS,
    DERIVED_KEYS,
    HOW_OFFSET,
    NUMERIC_KEYS,
    PAIR_BY_NAME,
    PAIRS,
    Pair,
    key_column,
)
from trailsight.features.behaviour import AWS_NETWORK_KINDS, PERSON_IDENTITIES
from trailsight.features.chunk import (
    ARROW_KEY_SOURCES,
    IntArray,
    KeyCodes,
    combine_codes,
    dense,
    ints,
    pair_rows,
    value_span,
    with_arrow_keys,
)
from trailsight.store.state import transaction

_TS = pa.timestamp("us", tz="UTC")

#: Version of the daily tables' definition; cached tables of another version are rebuilt.
DAILY_VERSION = 4

#: The event columns (after :func:`~trailsight.features.asof.prepare`) every day's pass reads,
#: whatever its pairs: those of the volume, error, user, network-user and context tables.
_EVERY_DAY: tuple[str, ...] = (
    "event_time",
    "day",
    "hour_idx",
    "b15",
    "error_code",
    "ip_kind",
    "identity_type",
    "session_name",
    "principal",
    "account_id",
    "api",
    "ua_family",
    "net_prefix",
)

#: Every event column a day's pass may read: those, and the keys of the pairs (the keys of
#: :data:`~trailsight.features.asof.ARROW_KEYS` are added in Arrow, from ``user_agent``).
DAY_COLUMNS: tuple[str, ...] = (
    *_EVERY_DAY,
    "person",
    "service",
    "country",
    "city",
    "asn",
    "net_class",
    "user_agent",
    "region",
    "hour",
    "how",
    "lhour",
    *(k for k in DERIVED_KEYS if k not in ARROW_KEYS),
)


def day_columns(pairs: Sequence[Pair] = PAIRS) -> tuple[str, ...]:
    """The columns of :data:`DAY_COLUMNS` a day's pass with ``pairs`` reads (a key of
    :data:`~trailsight.features.asof.ARROW_KEYS` needs the column it comes from)."""
    keys = {k for pair in pairs for k in pair.keys}
    wanted = {*_EVERY_DAY, *keys, *(ARROW_KEY_SOURCES[k] for k in keys & set(ARROW_KEY_SOURCES))}
    return tuple(c for c in DAY_COLUMNS if c in wanted)


class _Grouped:
    """Rows of a day grouped by an integer code, with one output value per group (by group id).

    Unlike :class:`~trailsight.features.chunk._Groups` nothing here needs the rows in order, so
    there is no sort: ``rep`` is some row of each group (every row of a group has its key values).
    """

    def __init__(self, code: IntArray) -> None:
        self.n = len(code)
        self.ids, self.size = dense(code)
        self.rep: IntArray = np.zeros(self.size, dtype=np.int64)
        self.rep[self.ids] = np.arange(self.n, dtype=np.int64)

    def count(self, mask: Any = None) -> IntArray:
        weights = None if mask is None else np.asarray(mask, dtype=np.float64)
        out: IntArray = np.bincount(self.ids, weights=weights, minlength=self.size).astype(np.int64)
        return out

    def minimum(self, values: IntArray) -> IntArray:
        out = np.full(self.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out, self.ids, values)
        return out

    def maximum(self, values: IntArray) -> IntArray:
        out = np.full(self.size, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(out, self.ids, values)
        return out

    def distinct(self, values: IntArray) -> IntArray:
        """How many distinct ``values`` each group holds."""
        lo, span = value_span(values)
        cells = self.ids * span + (values - lo)
        if self.size * span <= 4 * self.n + (1 << 20):
            present = np.zeros(self.size * span, dtype=bool)
            present[cells] = True
            counted: IntArray = present.reshape(self.size, span).sum(axis=1, dtype=np.int64)
            return counted
        pairs = np.unique(cells)
        out: IntArray = np.bincount(pairs // span, minlength=self.size).astype(np.int64)
        return out


#: Daily tables kept in memory (the behaviour context reads them); the others go to DuckDB.
CONTEXT_TABLES = ("pday", "papi")
#: Daily tables wait in memory up to about this many bytes before they go into the database.
FLUSH_BYTES = 64 * 2**20
#: A daily table that went into the database is windowed about this many bytes of it at a time.
WINDOW_BYTES = 256 * 2**20


class DailyProfiles:
    """Accumulates the daily tables of every pair, the volume, error and api-user profiles and the context.

    The context's tables (:data:`CONTEXT_TABLES`) are kept in memory; every other table goes,
    ``flush_bytes`` at a time, into a table ``_ts_daily_<name>_<tag>`` of the DuckDB connection
    ``db``, so a long history costs the database's disk rather than memory.
    """

    def __init__(self, db: Any, tag: str, flush_bytes: int | None = None, window_bytes: int | None = None) -> None:
        self._db = db
        self._tag = tag
        self._parts: dict[str, list[pa.Table]] = defaultdict(list)
        self._waiting: dict[str, list[pa.Table]] = defaultdict(list)
        self._waiting_bytes = 0
        self._flush_bytes = FLUSH_BYTES if flush_bytes is None else flush_bytes
        self._window_bytes = WINDOW_BYTES if window_bytes is None else window_bytes
        self._made: set[str] = set()
        self._bytes: dict[str, int] = defaultdict(int)  # what each table took in memory, to size its pieces
        self._rows: dict[str, int] = defaultdict(int)

    def extend(self, tables: dict[str, pa.Table]) -> None:
        """Fold in daily tables made by :meth:`reduce` (or read back from the profile cache)."""
        for name, table in tables.items():
            if not table.num_rows:
                continue
            if name in CONTEXT_TABLES:
                self._parts[name].append(table)
            else:
                self._waiting[name].append(table)
                self._waiting_bytes += table.nbytes
                self._bytes[name] += table.nbytes
                self._rows[name] += table.num_rows
        if self._waiting_bytes >= self._flush_bytes:
            self._flush()

    def _flush(self, only: str | None = None) -> None:
        """Insert what is waiting (of table ``only``, if given), one statement per table (many small
        inserts cost more than one), all in one transaction (one commit instead of one per table)."""
        names = list(self._waiting) if only is None else [only] if only in self._waiting else []
        if not names:
            return
        with transaction(self._db):
            for name in names:
                self._insert(name, pa.concat_tables(self._take_waiting(name)))

    def _take_waiting(self, name: str) -> list[pa.Table]:
        """The tables of ``name`` waiting in memory, which stop waiting (counted out of the flush bytes)."""
        parts = self._waiting.pop(name, [])
        self._waiting_bytes -= sum(t.nbytes for t in parts)
        return parts

    def _insert(self, name: str, table: pa.Table) -> None:
        write_table(self._db, self.stored(name), table, append=name in self._made)
        self._made.add(name)

    def stored(self, name: str) -> str:
        """The database table holding daily table ``name`` (``_ts_daily_<name>_<tag>``)."""
        return f"_ts_daily_{name}_{self._tag}"

    def finish(self, name: str) -> str:
        """:meth:`stored`, with what waits of ``name`` inserted (created empty when no rows of it came)."""
        self._flush(name)
        if name not in self._made:
            self._insert(name, daily_schemas()[name])
        return self.stored(name)

    @staticmethod
    def reduce(table: pa.Table, pairs: Sequence[Pair] = PAIRS) -> dict[str, pa.Table]:
        """The daily tables of some events (columns :data:`DAY_COLUMNS` and ``msg``, the error key):
        one per pair of ``pairs`` (default all), and the volume, error, user and context tables."""
        out: dict[str, pa.Table] = {}
        if table.num_rows == 0:
            return out
        table = with_arrow_keys(table)
        codes = KeyCodes(table)
        times = table.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
        day = ints(table, "day")
        hour_idx = ints(table, "hour_idx")
        b15 = ints(table, "b15")
        d0, d_span = value_span(day)
        by_day = (day - d0, d_span)

        def grouped(keys: list[str], extra: list[tuple[IntArray, int]]) -> _Grouped:
            return _Grouped(combine_codes([*(codes.part(k) for k in keys), *extra]))

        def key_columns(g: _Grouped, keys: list[str], rows: IntArray | None = None) -> dict[str, pa.Array]:
            at = g.rep if rows is None else rows[g.rep]
            return {k: codes.at(k, at) for k in keys}  # each group's key: from the codes the grouping used

        for pair in pairs:
            keys = [key_column(k) for k in pair.keys]
            rows = pair_rows(table, pair)
            p_times, p_day, p_hours = times, day, hour_idx
            if rows is None:
                g = grouped(keys, [by_day])
            else:  # a sparse pair: only the rows with every key take part
                p_times, p_day, p_hours = times[rows], day[rows], hour_idx[rows]
                parts = [(values[rows], size) for values, size in map(codes.part, keys)]
                g = _Grouped(combine_codes([*parts, (p_day - d0, d_span)]))
            cols = key_columns(g, keys, rows)
            cols["day"] = pa.array(p_day[g.rep], pa.int64())
            cols["_n"] = pa.array(g.count(), pa.int64())
            cols["_first"] = pa.array(g.minimum(p_times), pa.int64()).cast(_TS)
            cols["_last"] = pa.array(g.maximum(p_times), pa.int64()).cast(_TS)
            if pair.hours:
                cols["_hours"] = pa.array(g.distinct(p_hours), pa.int64())
            out[pair.name] = pa.table(cols)

        h0, h_span = value_span(hour_idx)
        g = grouped(["_k_principal"], [(hour_idx - h0, h_span)])
        cols = key_columns(g, ["_k_principal"])
        cols["hour_idx"] = pa.array(hour_idx[g.rep], pa.int64())
        cols["_c"] = pa.array(g.count(), pa.int64())
        out["vol"] = pa.table(cols)

        failed = np.flatnonzero(table.column("error_code").is_valid().to_numpy(zero_copy_only=False))
        if len(failed):
            account, accounts = codes.part("_k_account_id")
            b0, b_span = value_span(b15[failed])
            g = _Grouped(combine_codes([(account[failed], accounts), (b15[failed] - b0, b_span)]))
            cols = key_columns(g, ["_k_account_id"], failed)
            cols["b15"] = pa.array(b15[failed][g.rep], pa.int64())
            cols["_dm"] = pa.array(g.distinct(codes.column("_k_msg")[0][failed]), pa.int64())
            out["err"] = pa.table(cols)

        trio = ["_k_account_id", "_k_api", "_k_principal"]
        g = grouped(trio, [by_day])
        cols = key_columns(g, trio)
        cols["day"] = pa.array(day[g.rep], pa.int64())
        out["used"] = pa.table(cols)

        netted = np.flatnonzero(codes.rows_where("_k_net_prefix", lambda v: pc.not_equal(v, "")))
        trio = ["_k_account_id", "_k_net_prefix", "_k_principal"]
        g = _Grouped(
            combine_codes([*((c[netted], n) for c, n in (codes.part(k) for k in trio)), (day[netted] - d0, d_span)])
        )
        cols = key_columns(g, trio, netted)
        cols["day"] = pa.array(day[netted][g.rep], pa.int64())
        out["net_used"] = pa.table(cols)

        # Context (behaviour.context_aggregates): per principal-day and per principal-api-day.
        kind = table.column("ip_kind").fill_null("")
        person = (
            pc.is_in(table.column("identity_type").fill_null(""), value_set=pa.array(sorted(PERSON_IDENTITIES)))
            .to_numpy(zero_copy_only=False)
            .astype(bool)
        )
        person |= pc.match_substring(table.column("session_name").fill_null(""), "@").to_numpy(zero_copy_only=False)
        person |= codes.rows_where("_k_principal", lambda v: pc.match_substring(v, "/AWSReservedSSO_"))
        aws = pc.is_in(kind, value_set=pa.array(sorted(AWS_NETWORK_KINDS))).to_numpy(zero_copy_only=False)
        g = grouped(["_k_account_id", "_k_principal"], [by_day])
        cols = key_columns(g, ["_k_account_id", "_k_principal"])
        cols["day"] = pa.array(day[g.rep], pa.int64())
        cols["n"] = pa.array(g.count(), pa.int64())
        cols["hours"] = pa.array(g.distinct(hour_idx), pa.int64())
        console = codes.rows_where("_k_ua_family", lambda v: pc.equal(v, "console"))
        cli = codes.rows_where("_k_ua_family", lambda v: pc.equal(v, "cli"))
        cols["n_console"] = pa.array(g.count(console), pa.int64())
        cols["n_cli"] = pa.array(g.count(cli), pa.int64())
        cols["n_person"] = pa.array(g.count(person), pa.int64())
        cols["n_aws"] = pa.array(g.count(aws), pa.int64())
        out["pday"] = pa.table(cols)
        quad = ["_k_account_id", "_k_principal", "_k_api"]
        g = grouped(quad, [by_day])
        cols = key_columns(g, quad)
        cols["day"] = pa.array(day[g.rep], pa.int64())
        cols["first"] = pa.array(g.minimum(times), pa.int64()).cast(_TS)
        out["papi"] = pa.table(cols)
        return out

    def context(self, name: str) -> pa.Table:
        """The in-memory daily table ``name`` (one of :data:`CONTEXT_TABLES`), empty when none came."""
        parts = self._parts.pop(name, None)
        return pa.concat_tables(parts) if parts else daily_schemas()[name]

    def pieces(self, name: str, keys: Sequence[str]) -> Iterator[pa.Table]:
        """The whole daily table ``name``, in pieces of whole groups of ``keys`` (for :func:`windowed`).

        A table still waiting in memory comes whole. One in the database comes in as many pieces,
        split by a hash of ``keys``, as keep each near :data:`WINDOW_BYTES`; the database drops it after.
        """
        schema = daily_schemas()[name].schema
        if name not in self._made:
            parts = self._take_waiting(name)
            yield (
                pa.concat_tables([t.select(schema.names).cast(schema) for t in parts])
                if parts
                else schema.empty_table()
            )
            return
        self._flush(name)  # what still waits joins the rest in the database
        stored = self.stored(name)
        rows = self._db.execute(f"SELECT count(*) FROM {stored}").fetchall()[0][0]
        row_bytes = self._bytes[name] / max(self._rows[name], 1)
        split = max(1, math.ceil(rows * row_bytes / self._window_bytes))
        hashed = ", ".join(f'"{k}"' for k in keys)
        for i in range(split):
            where = f" WHERE hash({hashed}) % {split} = {i}" if split > 1 else ""
            yield self._db.sql(f"SELECT * FROM {stored}{where}").to_arrow_table().select(schema.names).cast(schema)
        self._db.execute(f"DROP TABLE {stored}")
        self._made.discard(name)


def write_table(db: Any, name: str, table: pa.Table, *, append: bool = False) -> None:
    """Store ``table`` as the database table ``name`` of connection ``db`` (``append``: add it, by
    column name, to the table already there)."""
    db.register("_ts_arrow_in", table)
    try:
        if append:
            db.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _ts_arrow_in")
        else:
            db.execute(f"CREATE TABLE {name} AS SELECT * FROM _ts_arrow_in")
    finally:
        db.unregister("_ts_arrow_in")


class _Windows:
    """For each row of a table, the rows of its group at most ``width`` steps before it (not at its step).

    ``group`` holds group ids and ``pos`` positions (days, hours, 15-minute buckets). In the order
    that sorts the rows by (group, pos), the rows of sorted row ``i``'s window are ``lo[i]:hi[i]``,
    which is what a SQL window ``PARTITION BY group ORDER BY pos RANGE BETWEEN width PRECEDING AND
    1 PRECEDING`` frames.
    """

    def __init__(self, group: IntArray, pos: IntArray, width: int) -> None:
        p0, span = value_span(pos)
        ids, _ = dense(group)
        key = ids * (span + width + 1) + (pos - p0)  # gaps between groups wider than any window
        self.order = np.argsort(key, kind="stable")
        key = key[self.order]
        self.hi = np.searchsorted(key, key, side="left")
        self.lo = np.searchsorted(key, key - width, side="left")
        self.empty = self.hi == self.lo

    def sum(self, values: IntArray) -> pa.Array:
        """Sum of ``values`` over each window (sorted order; null where the window is empty)."""
        running = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(values[self.order], out=running[1:])
        return pa.array(running[self.hi] - running[self.lo], pa.int64(), mask=self.empty)

    def count(self) -> pa.Array:
        return pa.array(self.hi - self.lo, pa.int64())

    def first(self, values: IntArray) -> pa.Array:
        """``values`` of each window's first row (the smallest, when they grow with ``pos``)."""
        return pa.array(values[self.order][np.minimum(self.lo, len(values) - 1)], pa.int64(), mask=self.empty)

    def last(self, values: IntArray) -> pa.Array:
        """``values`` of each window's last row (the largest, when they grow with ``pos``)."""
        return pa.array(values[self.order][np.maximum(self.hi - 1, 0)], pa.int64(), mask=self.empty)


def window_spec(name: str) -> tuple[list[str], str, int]:
    """(group key columns, position column, positions per day) of the windowed profile ``name``."""
    if name == "vol":
        return ["_k_principal"], "hour_idx", 24
    if name == "err":
        return ["_k_account_id"], "b15", 96
    return [key_column(k) for k in PAIR_BY_NAME[name].keys], "day", 1


def windowed(daily: pa.Table, name: str, forget_days: int, since_day: int) -> pa.Table:
    """The windowed profile ``name`` of a daily table, for the days from ``since_day`` on.

    The same table as the Ibis windows (:func:`~trailsight.features.asof.pair_window`,
    :func:`~trailsight.features.asof.volume_window`, :func:`~trailsight.features.asof.error_window`)
    with the same filter, in another row order: sums over the ``forget_days`` before each row's
    day (hours and buckets of the same hour-of-week slot, for ``vol`` and ``err``). A pair's first
    and last times come from the window's earliest and latest days (its days are distinct and
    each day's times lie within it).
    """
    keys, pos_col, per_day = window_spec(name)
    width, since = forget_days * per_day, since_day * per_day
    pos = ints(daily, pos_col)
    parts = []
    for k in keys:
        encoded = pc.dictionary_encode(daily.column(k).combine_chunks())
        parts.append((encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)))
    if name == "vol":
        parts.append(((pos + HOW_OFFSET) % 168, 168))
    win = _Windows(combine_codes(parts) if parts else np.zeros(daily.num_rows, np.int64), pos, width)
    kept = np.flatnonzero(pos[win.order] >= since)

    def keep(values: pa.Array) -> pa.Array:
        return values.take(pa.array(kept))

    rows = pa.array(win.order[kept])
    out: dict[str, pa.Array] = {k: daily.column(k).take(rows) for k in keys}
    out[pos_col] = pa.array(pos[win.order][kept], pa.int64())
    if name in ("vol", "err"):
        value = ints(daily, "_c" if name == "vol" else "_dm")
        tag = "vol__v" if name == "vol" else "err__e"
        out[f"{tag}s"] = keep(win.sum(value))
        out[f"{tag}q"] = keep(win.sum(value * value))
        return pa.table(out)
    first = daily.column("_first").cast(pa.int64()).to_numpy(zero_copy_only=False)
    last = daily.column("_last").cast(pa.int64()).to_numpy(zero_copy_only=False)
    out[f"{name}__pn"] = keep(win.sum(ints(daily, "_n")))
    out[f"{name}__pd"] = keep(win.count())
    out[f"{name}__pf"] = keep(win.first(first)).cast(_TS)
    out[f"{name}__pl"] = keep(win.last(last)).cast(_TS)
    if PAIR_BY_NAME[name].hours:
        out[f"{name}__ph"] = keep(win.sum(ints(daily, "_hours")))
    return pa.table(out)


def _key_type(key: str) -> pa.DataType:
    return pa.int64() if key in NUMERIC_KEYS else pa.string()


def daily_schemas(pairs: Sequence[Pair] = PAIRS) -> dict[str, pa.Table]:
    """An empty table of every daily table :class:`DailyProfiles` makes with ``pairs`` (for a history without any)."""
    i64, text = pa.int64(), pa.string()
    out: dict[str, pa.Table] = {}
    for pair in pairs:
        fields = [pa.field(key_column(k), _key_type(key_column(k))) for k in pair.keys]
        fields += [pa.field("day", i64), pa.field("_n", i64), pa.field("_first", _TS), pa.field("_last", _TS)]
        if pair.hours:
            fields.append(pa.field("_hours", i64))
        out[pair.name] = pa.schema(fields).empty_table()
    named = {
        "vol": [("_k_principal", text), ("hour_idx", i64), ("_c", i64)],
        "err": [("_k_account_id", text), ("b15", i64), ("_dm", i64)],
        "used": [("_k_account_id", text), ("_k_api", text), ("_k_principal", text), ("day", i64)],
        "net_used": [("_k_account_id", text), ("_k_net_prefix", text), ("_k_principal", text), ("day", i64)],
        "pday": [("_k_account_id", text), ("_k_principal", text), ("day", i64)]
        + [(c, i64) for c in ("n", "hours", "n_console", "n_cli", "n_person", "n_aws")],
        "papi": [("_k_account_id", text), ("_k_principal", text), ("_k_api", text), ("day", i64), ("first", _TS)],
    }
    for name, fields in named.items():
        out[name] = pa.schema(fields).empty_table()
    return out


__all__ = [
    "CONTEXT_TABLES",
    "DAILY_VERSION",
    "DAY_COLUMNS",
    "DailyProfiles",
    "daily_schemas",
    "day_columns",
    "window_spec",
    "windowed",
    "write_table",
]
