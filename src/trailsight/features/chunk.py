"""The per-event part of the as-of features of one chunk, computed with numpy on the driver.

:func:`trailsight.features.asof.build_feature_table` states the features once, in Ibis: for
every pair, windows over (pair, day) give the same-day running figures and a join on
(pair, day) adds the earlier days from the windowed daily profile. That expression is what
Spark runs. On one machine its shape is the cost: about fifty window sorts and fifty hash
joins on text keys per chunk. This module computes the same columns from the same
materialised profiles with integer codes and one stable sort per pair, then finishes it with
the arithmetic of the finishing expression (:func:`~trailsight.features.asof.finish`: ages,
frequency classes, shares and gates) done in the same order in numpy (:func:`finished`), which
gives the same doubles without a round trip through SQL.

``tests/features/test_chunk.py`` checks that the two give identical tables, column by column.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from trailsight.enrich.netclass import TRAVEL_CLASSES
from trailsight.enrich.useragent import client_agents
from trailsight.features.asof import (
    ARROW_KEYS,
    CARRIED_COLUMNS,
    DERIVED_COLUMNS,
    DERIVED_KEYS,
    NUMERIC_KEYS,
    PAIRS,
    SECONDS_PER_DAY,
    Pair,
    feature_columns,
    key_column,
    prepare,
)
from trailsight.features.options import FeatureOptions

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_TS = pa.timestamp("us", tz="UTC")
_NAT = np.iinfo(np.int64).min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class KeyCodes:
    """Integer codes of the chunk's pair keys, shared by every pair that uses them.

    A key is the event column as :func:`~trailsight.features.asof.prepare` keys it (text, null
    as ``""``; ``hour``/``how`` as numbers), derived here in Arrow rather than carried from SQL.
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._codes: dict[str, tuple[IntArray, pa.Array]] = {}

    def key(self, name: str) -> pa.Array:
        """The key column ``name`` (``_k_<column>``) of every row."""
        codes, values = self.column(name)
        return values.take(pa.array(codes))

    def at(self, name: str, rows: IntArray) -> pa.Array:
        """The key column ``name`` at the rows ``rows`` (taken from its distinct values)."""
        codes, values = self.column(name)
        return values.take(pa.array(codes[rows]))

    def rows_where(self, name: str, test: Callable[[pa.Array], pa.Array]) -> BoolArray:
        """Per row, ``test`` (a boolean Arrow function) of its key ``name``, worked out once per distinct value."""
        codes, values = self.column(name)
        hits: BoolArray = test(values).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return hits[codes]

    def column(self, name: str) -> tuple[IntArray, pa.Array]:
        """(codes of every row, the distinct values they index) for key column ``name``."""
        if name not in self._codes:
            raw = self._table.column(name.removeprefix("_k_"))
            if not pa.types.is_dictionary(raw.type):  # (with_arrow_keys encodes its keys already)
                if name not in NUMERIC_KEYS and not pa.types.is_string(raw.type):
                    raw = raw.cast(pa.string())
                raw = pc.dictionary_encode(raw)  # one dictionary for every chunk
            self._codes[name] = dictionary_codes(raw, -1 if name in NUMERIC_KEYS else "")
        return self._codes[name]

    def part(self, name: str) -> tuple[IntArray, int]:
        """(codes of every row, how many distinct values) for key column ``name``, for :func:`combine_codes`."""
        codes, values = self.column(name)
        return codes, len(values)


def dictionary_codes(encoded: pa.ChunkedArray, null: str | int) -> tuple[IntArray, pa.Array]:
    """(codes, distinct values) of a dictionary-encoded key whose chunks share one dictionary of
    distinct values; a null row is the key ``null`` (``""`` for text, -1 for numbers)."""
    if not encoded.num_chunks:
        return np.zeros(0, dtype=np.int64), pa.array([], encoded.type.value_type)
    values = encoded.chunk(0).dictionary
    codes = np.concatenate(
        [chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) for chunk in encoded.chunks]
    )
    if encoded.null_count:
        at = pc.index(values, null).as_py()
        if at < 0:
            values = pa.concat_arrays([values, pa.array([null], values.type)])
            at = len(values) - 1
        codes[codes < 0] = at
    return codes, values


#: How each key of :data:`~trailsight.features.asof.ARROW_KEYS` is worked out: (the column it
#: comes from, the function of that column).
_ARROW_KEY_OF: dict[str, tuple[str, Callable[[pa.ChunkedArray], pa.Array]]] = {
    "agent": ("user_agent", client_agents),
}


#: The event column each key of :data:`~trailsight.features.asof.ARROW_KEYS` comes from.
ARROW_KEY_SOURCES: dict[str, str] = {key: source for key, (source, _) in _ARROW_KEY_OF.items()}


def with_arrow_keys(table: pa.Table) -> pa.Table:
    """``table`` with the derived keys of :data:`~trailsight.features.asof.ARROW_KEYS` it lacks
    added (those whose source column it has)."""
    for key in ARROW_KEYS:
        source, derive = _ARROW_KEY_OF[key]
        if key not in table.column_names and source in table.column_names:
            table = table.append_column(key, derive(table.column(source)))
    return table


def combine_codes(parts: Sequence[tuple[IntArray, int]]) -> IntArray:
    """Mixed-radix code of several code arrays (each with its number of distinct values)."""
    out = np.zeros(len(parts[0][0]), dtype=np.int64)
    for codes, size in parts:
        out = out * max(size, 1) + codes
    return out


def dense(code: IntArray) -> tuple[IntArray, int]:
    """(group ids 0..k-1 in the order of ``code``'s values, k): small ids make sorting cheap."""
    n = len(code)
    if n == 0:
        return code.astype(np.int64), 0
    top = int(code.max()) + 1
    if top <= 4 * n + (1 << 20):
        present = np.zeros(top, dtype=bool)
        present[code] = True
        ids = np.cumsum(present, dtype=np.int64) - 1
        return ids[code], int(ids[-1]) + 1
    uniq, inverse = np.unique(code, return_inverse=True)
    return inverse.astype(np.int64), len(uniq)


def stable_order(ids: IntArray, size: int) -> IntArray:
    """Indices that sort ``ids`` (values below ``size``), ties kept in row order."""
    small = ids.astype(np.uint16) if size <= 1 << 16 else ids.astype(np.int32) if size < 1 << 31 else ids
    out: IntArray = np.argsort(small, kind="stable").astype(np.int64)  # radix sort for 16-bit keys
    return out


class _Groups:
    """Rows grouped by an integer code, in time order within each group.

    The rows are in time order, or ``by_time`` lists them in time order (row positions).
    """

    def __init__(self, code: IntArray, by_time: IntArray | None = None) -> None:
        n = len(code)
        self.n = n
        code, size = dense(code)
        if by_time is None:
            self.order = stable_order(code, size)
        else:  # ties of the stable sort keep time order
            self.order = by_time[stable_order(code[by_time], size)]
        sorted_code = code[self.order]
        self.new = np.ones(n, dtype=bool)
        if n:
            self.new[1:] = sorted_code[1:] != sorted_code[:-1]
        # Each sorted row's group start: the group's first position, repeated over the group.
        firsts = np.flatnonzero(self.new)
        self.start = np.repeat(firsts, np.diff(np.append(firsts, n))).astype(np.int64, copy=False)
        self.ids = code
        self.size = size
        #: One row of each group (its first), by group id.
        self.rep: IntArray = self.order[self.new]

    def unsort(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def row_number(self) -> IntArray:
        """0-based position of each row in its group (how many earlier rows share its code)."""
        return self.unsort(np.arange(self.n, dtype=np.int64) - self.start)

    def first(self, values: IntArray) -> IntArray:
        """The group's first value, for every row."""
        return self.unsort(values[self.order][self.start])

    def lag(self, values: IntArray) -> IntArray:
        """The previous row's value in the group (``_NAT`` for the group's first row)."""
        ordered = values[self.order]
        out = np.empty_like(ordered)
        if self.n:
            out[0] = _NAT
            out[1:] = ordered[:-1]
        out[self.new] = _NAT
        return self.unsort(out)


def _lookup(
    codes: KeyCodes,
    keys: Sequence[str],
    slot: IntArray,
    profile: pa.Table,
    slot_col: str,
    rows: IntArray | None = None,
) -> IntArray:
    """Row index into ``profile`` matching the (keys, slot) of each event (or of events ``rows``), or -1."""
    if rows is not None:
        slot = slot[rows]
    n = len(slot)
    if profile.num_rows == 0:
        return np.full(n, -1, dtype=np.int64)
    ev_parts: list[tuple[IntArray, int]] = []
    pr_parts: list[tuple[IntArray, int]] = []
    valid = np.ones(profile.num_rows, dtype=bool)
    for key in keys:
        ev_codes, values = codes.column(key)
        idx = pc.index_in(profile.column(key), value_set=values)
        valid &= idx.is_valid().to_numpy(zero_copy_only=False)
        pr = idx.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        ev_parts.append((ev_codes if rows is None else ev_codes[rows], len(values)))
        pr_parts.append((pr, len(values)))
    lo, span = value_span(slot)
    p_slot = profile.column(slot_col).to_numpy(zero_copy_only=False).astype(np.int64)
    valid &= (p_slot >= lo) & (p_slot < lo + span)
    ev_code = combine_codes([*ev_parts, (slot - lo, span)])
    pr_code = combine_codes([*pr_parts, (np.clip(p_slot - lo, 0, span - 1), span)])
    kept = np.flatnonzero(valid)
    pr_code = pr_code[kept]
    sort = np.argsort(pr_code, kind="stable")
    pr_sorted = pr_code[sort]
    at = np.searchsorted(pr_sorted, ev_code)
    at_c = np.minimum(at, max(len(pr_sorted) - 1, 0))
    hit = (at < len(pr_sorted)) & (pr_sorted[at_c] == ev_code) if len(pr_sorted) else np.zeros(n, dtype=bool)
    return np.where(hit, kept[sort[at_c]] if len(pr_sorted) else -1, -1).astype(np.int64)


def _gather(profile: pa.Table, column: str, match: IntArray, ids: IntArray) -> tuple[IntArray, BoolArray]:
    """``profile[column]`` at each group's ``match`` (-1: none), spread to rows by group ``ids``.

    Returns (values as int64, timestamps as microseconds; valid), invalid where there is no
    match or the profile value is null.
    """
    col = profile.column(column)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    if profile.num_rows == 0:
        zeros = np.zeros(len(ids), dtype=np.int64)
        return zeros, zeros.astype(bool)
    # The profile column as numpy once, then numpy indexing (cheaper than an Arrow take of nullable values).
    at = np.maximum(match, 0)
    values_g = col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)[at]
    valid_g = match >= 0
    if col.null_count:
        valid_g &= col.is_valid().to_numpy(zero_copy_only=False)[at]
    return values_g[ids], valid_g[ids]


def ints(table: pa.Table, name: str) -> IntArray:
    """Integer column ``name`` of ``table`` as int64 numpy."""
    out: IntArray = table.column(name).to_numpy(zero_copy_only=False).astype(np.int64)
    return out


def _nullable(values: IntArray, valid: BoolArray) -> pa.Array:
    return pa.array(values, pa.int64(), mask=~valid)


def _times(values: IntArray) -> pa.Array:
    """Microsecond epochs (``_NAT`` = null) as a UTC timestamp array."""
    return pa.array(values, pa.int64(), mask=values == _NAT).cast(_TS)


def _pair(
    codes: KeyCodes,
    pair: Pair,
    times: IntArray,
    day: IntArray,
    hour_idx: IntArray,
    profile: pa.Table,
    by_time: IntArray | None = None,
    rows: IntArray | None = None,
) -> dict[str, pa.Array]:
    """One pair's figures for every row; with ``rows`` (a sparse pair's rows, in time order), only those take part.

    ``by_time`` lists the rows in time order (None: they are).
    """
    keys = [key_column(k) for k in pair.keys]
    parts = [codes.part(k) for k in keys]
    at_day = day
    if rows is not None:
        times, at_day, hour_idx = times[rows], day[rows], hour_idx[rows]
        parts = [(values[rows], size) for values, size in parts]
    d0, days = value_span(at_day)
    groups = _Groups(combine_codes([*parts, (at_day - d0, days)]), by_time if rows is None else None)
    rn = groups.row_number()
    seen = rn > 0
    match = _lookup(codes, keys, day, profile, "day", groups.rep if rows is None else rows[groups.rep])
    nm = pair.name
    pn, _ = _gather(profile, f"{nm}__pn", match, groups.ids)
    pd, _ = _gather(profile, f"{nm}__pd", match, groups.ids)
    pf, pf_ok = _gather(profile, f"{nm}__pf", match, groups.ids)
    pl, pl_ok = _gather(profile, f"{nm}__pl", match, groups.ids)
    tf = groups.first(times)
    tl = groups.lag(times)
    pf_np = np.where(pf_ok, pf, _NAT)
    pl_np = np.where(pl_ok, pl, _NAT)
    counts = {f"{nm}_n": pn + rn, f"{nm}_days": pd + seen.astype(np.int64)}
    stamps = {
        f"{nm}_first": np.where(pf_np != _NAT, pf_np, np.where(seen, tf, _NAT)),
        f"{nm}_last": np.where(seen, tl, pl_np),
    }
    if pair.hours:
        ph, _ = _gather(profile, f"{nm}__ph", match, groups.ids)
        # Distinct earlier hours of the day: changes of hour within the group, in time order.
        ordered_hour = hour_idx[groups.order]
        new_hour = groups.new.copy()
        if len(ordered_hour):
            new_hour[1:] |= ordered_hour[1:] != ordered_hour[:-1]
        changes = np.cumsum(new_hour)
        earlier_hours = groups.unsort(changes - changes[groups.start])
        again = groups.unsort(~new_hour)
        counts[f"{nm}_hours"] = ph + earlier_hours + again.astype(np.int64)
    if rows is not None:  # the rows that take no part: counts 0, times null
        for values, fill in ((counts, 0), (stamps, _NAT)):
            for name, part in values.items():
                whole = np.full(len(day), fill, dtype=np.int64)
                whole[rows] = part
                values[name] = whole
    out = {name: pa.array(values, pa.int64()) for name, values in counts.items()}
    out.update({name: _times(values) for name, values in stamps.items()})
    return out


def pair_rows(table: pa.Table, pair: Pair, by_time: IntArray | None = None) -> IntArray | None:
    """The rows of ``table`` a sparse pair counts (every key present); None for the other pairs.

    In row order, or in the order of ``by_time`` (all rows, in time order) when given.
    """
    if not pair.sparse:
        return None
    mask = np.ones(table.num_rows, dtype=bool)
    for key in pair.keys:
        mask &= table.column(key).is_valid().to_numpy(zero_copy_only=False)
    out: IntArray = np.flatnonzero(mask).astype(np.int64) if by_time is None else by_time[mask[by_time]]
    return out


#: Feature columns derived from another pair's columns (besides ``<pair>_freq`` and the ages).
_SHARES = {"p_hour_share": "p_hour", "p_how_share": "p_how"}
#: Pairs every chunk computes: their columns give the ages and the gates.
_OWNERS = frozenset({"p", "a", "x"})


def needed_pairs(columns: Sequence[str] | None) -> list[Pair]:
    """The pairs whose figures the feature ``columns`` need (all of them for None)."""
    if columns is None:
        return list(PAIRS)
    wanted = set(columns)
    uses = {pair for column, pair in _SHARES.items() if column in wanted}
    suffixes = ("n", "days", "first", "last", "hours", "freq")
    return [p for p in PAIRS if p.name in _OWNERS or p.name in uses or any(f"{p.name}_{s}" in wanted for s in suffixes)]


_TIME_ORDER = [("event_time", "ascending"), ("event_id", "ascending")]


class ChunkFeatures:
    """Computes chunk after chunk of one run the table :func:`build_feature_table` gives for it.

    ``con`` is the run's DuckDB backend, ``profiles`` the materialised windowed profiles (as
    :func:`~trailsight.features.asof.build_profiles` defines them; the local engine builds them day by
    day with :mod:`trailsight.features.daily`) over a range covering every chunk, and
    ``columns`` the feature columns wanted (default all): only the pairs they need are computed
    (:func:`needed_pairs`), and ``profiles`` need hold only those. The SQL of the chunk's events
    is compiled once and reused for every chunk.

    Several chunks may be computed at once from different threads, each with its own DuckDB
    connection to the run's database (``db``, a ``cursor()`` of it, holding its own
    ``view``); the SQL is compiled once, under a lock, on the run's backend. Each windowed
    profile is read from the database once, ordered by its day (hour, bucket), and every chunk
    takes its slice of it: it holds the scored days only, so it is about as big as the chunks'
    share of the profiles together.
    """

    def __init__(
        self, con: Any, profiles: dict[str, Any], options: FeatureOptions, columns: Sequence[str] | None = None
    ) -> None:
        self._con = con
        self._profiles = {name: table.get_name() for name, table in profiles.items()}
        self._options = options
        self._columns = list(columns) if columns is not None else None
        self._pairs = needed_pairs(self._columns)
        self._prepare_sql: dict[str, str] = {}
        self._compiling = threading.Lock()
        self._read: dict[str, tuple[pa.Table, IntArray]] = {}
        self._reading = threading.Lock()

    @staticmethod
    def _sql(db: Any, sql: str) -> pa.Table:
        result: pa.Table = db.sql(sql).to_arrow_table()
        return result

    def _scored(self, db: Any, name: str, col: str, lo: int, hi: int) -> pa.Table:
        """The rows of windowed profile ``name`` whose ``col`` lies in ``[lo, hi)``."""
        with self._reading:
            if name not in self._read:
                table = self._sql(db, f'SELECT * FROM {self._profiles[name]} ORDER BY "{col}"').combine_chunks()
                self._read[name] = (table, ints(table, col))
        table, at = self._read[name]
        first, last = np.searchsorted(at, [lo, hi], side="left").tolist()
        return table.slice(first, last - first)

    def _prepared(self, db: Any, events: Any, view: str, d_lo: int, d_hi: int, until: datetime) -> pa.Table:
        """The chunk's whole days up to ``until``, as read (keys are derived in Arrow)."""
        with self._compiling:
            if view not in self._prepare_sql:
                t = prepare(events)
                keys = [k for k in DERIVED_KEYS if k not in ARROW_KEYS]
                wanted = [*CARRIED_COLUMNS, *DERIVED_COLUMNS, *keys, "hour_idx", "b15", "_k_msg"]
                self._prepare_sql[view] = str(self._con.compile(t.select(*wanted).rename(msg="_k_msg")))
        stamp = until.strftime("%Y-%m-%d %H:%M:%S.%f")
        table = self._sql(
            db,
            f"SELECT * FROM ({self._prepare_sql[view]}) WHERE day >= {d_lo} AND day <= {d_hi} "
            f"AND event_time < TIMESTAMPTZ '{stamp}+00'",
        )
        return with_arrow_keys(table)

    def _principals(self, db: Any, codes: KeyCodes, day: IntArray, key: str, profile: str) -> pa.Array:
        """Per event, how many principals of its account used its ``key`` on earlier days of the window."""
        d0, d_span = value_span(day)
        per_key = _Groups(combine_codes([codes.part("_k_account_id"), codes.part(key), (day - d0, d_span)]))
        asked = pa.table(
            [codes.at("_k_account_id", per_key.rep), codes.at(key, per_key.rep), pa.array(day[per_key.rep])],
            names=["_k_account_id", key, "day"],
        )
        db.register("_ts_chunk_wanted", asked)
        users = self._sql(
            db,
            f"SELECT w._k_account_id, w.{key}, w.day, count(DISTINCT u._k_principal) AS users__n "
            f"FROM _ts_chunk_wanted w JOIN {self._profiles[profile]} u "
            f"ON u._k_account_id = w._k_account_id AND u.{key} = w.{key} "
            f"AND u.day >= w.day - {self._options.forget_days} AND u.day < w.day GROUP BY ALL",
        )
        db.unregister("_ts_chunk_wanted")
        match = _lookup(codes, ["_k_account_id", key], day, users, "day", per_key.rep)
        count, found = _gather(users, "users__n", match, per_key.ids)
        return pa.array(np.where(found, count, 0), pa.int64())

    def __call__(self, events: Any, view: str, since: datetime, until: datetime, db: Any = None) -> pa.Table:
        """The features of ``[since, until)``; ``events`` (Ibis view ``view``) holds at least its whole days.

        ``db`` is the DuckDB connection to read with (default the backend's own); ``view`` must
        name the chunk's events on it.
        """
        db = self._con.con if db is None else db
        d_lo = int(since.timestamp() // SECONDS_PER_DAY)
        d_hi = int((until.timestamp() - 1e-6) // SECONDS_PER_DAY)
        # The rows stay as read (reordering the wide event columns costs more than all the rest);
        # the running figures follow time order (then event id) through ``by_time``.
        cur = self._prepared(db, events, view, d_lo, d_hi, until)
        by_time = (
            pc.sort_indices(cur.select(["event_time", "event_id"]), sort_keys=_TIME_ORDER)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
        times = cur.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
        day, hour_idx, b15 = ints(cur, "day"), ints(cur, "hour_idx"), ints(cur, "b15")
        codes = KeyCodes(cur)

        built: dict[str, pa.Array] = {}
        for pair in self._pairs:
            profile = self._scored(db, pair.name, "day", d_lo, d_hi + 1)
            built.update(_pair(codes, pair, times, day, hour_idx, profile, by_time, pair_rows(cur, pair, by_time)))

        # Volume: the principal's calls earlier in the clock hour; its usual hour-of-week counts.
        h0, h_span = value_span(hour_idx)
        in_hour = _Groups(combine_codes([codes.part("_k_principal"), (hour_idx - h0, h_span)]), by_time)
        built["p_hour_count"] = pa.array(in_hour.row_number(), pa.int64())
        vol = self._scored(db, "vol", "hour_idx", d_lo * 24, (d_hi + 1) * 24)
        match = _lookup(codes, ["_k_principal"], hour_idx, vol, "hour_idx", in_hour.rep)
        built["vol__vs"] = _nullable(*_gather(vol, "vol__vs", match, in_hour.ids))
        built["vol__vq"] = _nullable(*_gather(vol, "vol__vq", match, in_hour.ids))

        # Errors: distinct messages of the account so far in the 15-minute bucket; the usual.
        is_err = cur.column("error_code").is_valid().to_numpy(zero_copy_only=False)
        b0, b_span = value_span(b15)
        bucket = [codes.part("_k_account_id"), (b15 - b0, b_span)]
        first_msg = _Groups(combine_codes([*bucket, (is_err.astype(np.int64), 2), codes.part("_k_msg")]), by_time)
        new = (is_err & (first_msg.row_number() == 0)).astype(np.int64)
        in_bucket = _Groups(combine_codes(bucket), by_time)
        ordered_new = new[in_bucket.order]
        running = np.cumsum(ordered_new)
        so_far = in_bucket.unsort(running - (running[in_bucket.start] - ordered_new[in_bucket.start]))
        built["err_distinct_15m"] = pa.array(np.where(is_err, so_far, 0), pa.int64())
        err = self._scored(db, "err", "b15", d_lo * 96, (d_hi + 1) * 96)
        match = _lookup(codes, ["_k_account_id"], b15, err, "b15", in_bucket.rep)
        built["err__es"] = _nullable(*_gather(err, "err__es", match, in_bucket.ids))
        built["err__eq"] = _nullable(*_gather(err, "err__eq", match, in_bucket.ids))

        # Principals of the account that used the api (the network) on earlier days of the window.
        built["a_api_principals"] = self._principals(db, codes, day, "_k_api", "used")
        built["a_net_principals"] = self._principals(db, codes, day, "_k_net_prefix", "net_used")

        built.update(_travel(cur, codes, times, day, by_time))
        built.update(signin_fails(cur, codes, times, day, by_time))

        table = cur.select([*CARRIED_COLUMNS, *DERIVED_COLUMNS])
        for name, values in built.items():
            table = table.append_column(name, values)
        # The chunk's own rows (earlier rows of its first day only fed the running figures); a
        # filter copies every column, so it runs only when some row is to go.
        own = times >= (since - _EPOCH) // timedelta(microseconds=1)
        if not own.all():
            table = table.filter(pa.array(own))
        wanted = self._columns if self._columns is not None else [*CARRIED_COLUMNS, *feature_columns()]
        have = set(table.column_names)
        extra = finished(table, self._options, [c for c in wanted if c not in have])
        return pa.table([table.column(c) if c in have else extra[c] for c in wanted], names=wanted)


def _travel(cur: pa.Table, codes: KeyCodes, times: IntArray, day: IntArray, by_time: IntArray) -> dict[str, pa.Array]:
    """The actor's previous located event of the same day, per located event (as ``asof._travel_part``)."""
    n = cur.num_rows
    lat = cur.column("latitude").to_numpy(zero_copy_only=False).astype(np.float64)
    lon = cur.column("longitude").to_numpy(zero_copy_only=False).astype(np.float64)
    classes = cur.column("net_class")
    in_class = pc.is_in(classes, value_set=pa.array(sorted(TRAVEL_CLASSES), pa.string())).fill_null(False)
    located = in_class.to_numpy(zero_copy_only=False).astype(bool) & ~np.isnan(lat) & ~np.isnan(lon)
    d0, d_span = value_span(day)
    groups = _Groups(
        combine_codes([codes.part("_k_person"), (day - d0, d_span), (located.astype(np.int64), 2)]), by_time
    )
    prev = groups.lag(np.arange(n, dtype=np.int64))
    has = located & (prev != _NAT)
    at = np.where(has, prev, 0)
    return {
        "x_prev_time": _times(np.where(has, times[at], _NAT)),
        "x_prev_lat": pa.array(lat[at], pa.float64(), mask=~has),
        "x_prev_lon": pa.array(lon[at], pa.float64(), mask=~has),
        "x_prev_class": pc.if_else(
            pa.array(has), classes.combine_chunks().take(pa.array(at)), pa.scalar(None, pa.string())
        ),
    }


def signin_fails(
    cur: pa.Table, codes: KeyCodes, times: IntArray, day: IntArray, by_time: IntArray
) -> dict[str, pa.Array]:
    """``signin_fails`` / ``signin_fails_first``, as :func:`~trailsight.features.asof._signin_part` states them.

    ``by_time`` lists the rows of ``cur`` in time order; sign-ins are few, so their runs are walked in Python.
    """
    kinds = cur.column("signin").to_pylist()
    principal, _ = codes.column("_k_principal")
    fails = np.zeros(len(kinds), dtype=np.int64)
    first = np.full(len(kinds), _NAT, dtype=np.int64)
    runs: dict[tuple[int, int], tuple[int, int]] = {}  # (principal, day) -> (failures, first failure)
    signed = pc.is_valid(cur.column("signin")).to_numpy(zero_copy_only=False)
    for i in by_time[signed[by_time]].tolist():
        key = (int(principal[i]), int(day[i]))
        n, at = runs.get(key, (0, _NAT))
        if kinds[i] == "fail":
            runs[key] = (n + 1, at if n else int(times[i]))
        else:
            fails[i], first[i] = n, at
            runs[key] = (0, _NAT)
    return {"signin_fails": pa.array(fails, pa.int64()), "signin_fails_first": _times(first)}


_FREQ_CLASSES = pa.array(["unseen", "frequent", "infrequent", "rare"], pa.string())


def finished(table: pa.Table, options: FeatureOptions, names: Sequence[str]) -> dict[str, pa.Array]:
    """The columns ``names`` that :func:`~trailsight.features.asof.finish` derives, from ``table``.

    The same arithmetic as the Ibis expression, in the same order (so the same doubles), with
    numpy: ages, frequency classes, shares, usual volume and error rates, gates.
    """
    forget = float(options.forget_days)

    def col(name: str) -> npt.NDArray[Any]:
        values: npt.NDArray[Any] = table.column(name).to_numpy(zero_copy_only=False)
        return values

    def filled(name: str) -> npt.NDArray[np.float64]:
        values: npt.NDArray[np.float64] = table.column(name).fill_null(0).to_numpy(zero_copy_only=False)
        return values.astype(np.float64)

    now = table.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
    ages: dict[str, npt.NDArray[np.float64]] = {}
    for owner in ("p", "a", "x"):
        first = table.column(f"{owner}_first")
        secs = first.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
        missing = first.is_null().to_numpy(zero_copy_only=False)
        ages[owner] = np.where(missing, 0.0, (now - secs) / SECONDS_PER_DAY)
    out: dict[str, npt.NDArray[Any]] = {f"{o}_age_days": ages[o] for o in ages}
    for pair in PAIRS:
        if f"{pair.name}_freq" not in names:
            continue
        days = col(f"{pair.name}_days")
        rate = days.astype(np.float64) / np.maximum(ages[pair.owner] / 7.0, 2.0)
        # unseen, frequent, infrequent, rare: the first case that holds, as ibis.cases picks it.
        code = np.where(days == 0, 0, np.where(rate >= 1.0, 1, np.where(rate >= 0.25, 2, 3)))
        out[f"{pair.name}_freq"] = code
    p_n = col("p_n").astype(np.float64)
    weeks = np.maximum(np.minimum(ages["p"], forget) / 7.0, 1.0)
    how_mean = filled("vol__vs") / weeks
    how_var = filled("vol__vq") / weeks - how_mean * how_mean
    buckets = np.maximum(np.minimum(ages["a"], forget) * 96.0, 1.0)
    err_mean = filled("err__es") / buckets
    err_var = filled("err__eq") / buckets - err_mean * err_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        for share, of in _SHARES.items():
            if share in names:  # the pair is there only when a share or its own columns are wanted
                out[share] = np.where(p_n > 0, col(f"{of}_n").astype(np.float64) / p_n, 0.0)
    out["p_how_mean"] = how_mean
    out["p_how_var"] = np.maximum(how_var, 0.0)
    out["err_bucket_mean"] = err_mean
    out["err_bucket_var"] = np.maximum(err_var, 0.0)
    out["gated_account"] = col("a_days") < options.min_account_days
    out["gated_principal"] = (col("p_days") < options.min_principal_days) | (p_n < options.min_principal_events)
    arrays: dict[str, pa.Array] = {}
    for name in names:
        if name.endswith("_freq"):
            arrays[name] = _FREQ_CLASSES.take(pa.array(out[name], pa.int8()))
        else:
            arrays[name] = pa.array(out[name])
    return arrays


def value_span(values: IntArray) -> tuple[int, int]:
    """(smallest value, number of values from it to the largest) of a non-negative code column."""
    if not len(values):
        return 0, 1
    lo = int(values.min())
    return lo, int(values.max()) - lo + 1
