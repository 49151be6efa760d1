"""The numpy path (daily profiles day by day, then chunk features) gives exactly the Ibis tables.

A store holds six days of a small simulated organisation (with its attacks, errors and
SSO people) and the real invictus-ir Stratus detonation after them. For each scored chunk,
one starting mid-day so that same-day history before ``since`` counts, the table of
:class:`~trailsight.features.chunk.ChunkFeatures` on the profiles of
:func:`trailsight.engines.local.materialise_profiles` is compared column by column with
:func:`~trailsight.features.asof.build_feature_table` computing everything itself; the
context's daily tables are compared with :func:`~trailsight.features.behaviour.context_aggregates`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from trailsight.detectors import registry
from trailsight.engines import local
from trailsight.engines.base import needed_columns
from trailsight.engines.local import materialise_profiles
from trailsight.features import daily as daily_module
from trailsight.features.asof import (
    PAIR_BY_NAME,
    PAIRS,
    SECONDS_PER_DAY,
    build_feature_table,
    error_window,
    feature_columns,
    history_window,
    pair_window,
    prepare,
    volume_window,
)
from trailsight.features.behaviour import context_aggregates
from trailsight.features.chunk import ChunkFeatures, needed_pairs
from trailsight.features.daily import DAY_COLUMNS, DailyProfiles, windowed, write_table
from trailsight.features.options import FeatureOptions
from trailsight.features.source import all_lake_files, connect, open_events, quiet_ibis
from trailsight.ingest import ingest
from trailsight.simulate import simulate
from trailsight.store.layout import StoreLayout

INVICTUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "invictus-ir_aws_dataset" / "CloudTrail"
SINCE = datetime(2023, 7, 8, 5, 30, tzinfo=UTC)
UNTIL = datetime(2023, 7, 11, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> StoreLayout:
    root = tmp_path_factory.mktemp("chunk")
    simulate(root / "sim", days=6, principals=8, seed=5, start=date(2023, 7, 4))
    sources = [root / "sim" / "AWSLogs"]
    if INVICTUS.is_dir():
        sources.append(INVICTUS)
    layout = StoreLayout(root / "store")
    assert ingest(sources, layout, None, workers=0).quarantined == 0
    return layout


_TIME_ORDER = [("event_time", "ascending"), ("event_id", "ascending")]


def _chunks() -> list[tuple[datetime, datetime]]:
    out, start = [], SINCE
    while start < UNTIL:
        end = min(UNTIL, datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1))
        out.append((start, end))
        start = end
    return out


def test_chunk_engine_equals_the_feature_expression(store: StoreLayout) -> None:
    opts = FeatureOptions()
    compared = 0
    with quiet_ibis():
        con = connect()
        profiles, _ = materialise_profiles(con, store, all_lake_files(store), SINCE, UNTIL, opts)
        engine = ChunkFeatures(con, profiles, opts)
        for c_since, c_until in _chunks():
            history = open_events(con, store, c_since, c_until, opts.forget_days)
            events = open_events(con, store, c_since, c_until, 0, table_name="chunk_events")
            expr = build_feature_table(history, c_since, c_until, opts)
            expected: pa.Table = con.con.sql(str(con.compile(expr))).to_arrow_table()
            # The engine keeps the rows as read; the expression sorts them.
            got = engine(events, "chunk_events", c_since, c_until).sort_by(_TIME_ORDER)
            expected = expected.sort_by(_TIME_ORDER)
            assert got.column_names == expected.column_names
            assert got.num_rows == expected.num_rows > 0
            for name in got.column_names:
                want = expected.column(name)
                if want.type != got.schema.field(name).type:  # DuckDB sums integers as HUGEINT
                    want = want.cast(got.schema.field(name).type)
                assert got.column(name).equals(want), f"{c_since}: column {name} differs"
            compared += got.num_rows
    assert compared > 5_000
    assert set(feature_columns()) <= set(got.column_names)


def test_context_daily_tables_equal_the_aggregates(store: StoreLayout) -> None:
    opts = FeatureOptions()
    with quiet_ibis():
        con = connect()
        _, daily = materialise_profiles(con, store, all_lake_files(store), SINCE, UNTIL, opts)
        history = history_window(prepare(open_events(con, store, SINCE, UNTIL, opts.forget_days)), SINCE, UNTIL, 90)
        for name, expr in context_aggregates(history).items():
            want: pa.Table = con.to_pyarrow(expr)
            got = daily[name].select(want.column_names)
            keys = [(c, "ascending") for c in want.column_names if c.startswith("_k_") or c == "day"]
            want = want.sort_by(keys)
            got = got.sort_by(keys)
            assert got.num_rows == want.num_rows > 100
            for column in want.column_names:
                assert got.column(column).equals(want.column(column).cast(got.schema.field(column).type)), column


def test_daily_tables_flushed_day_by_day_make_the_same_profiles(
    store: StoreLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Daily tables go into the database in pieces on long histories, and are windowed a few
    groups at a time when big; the profiles do not change."""
    opts = FeatureOptions()
    pieces: Counter[str] = Counter()

    def counted(daily: pa.Table, name: str, forget_days: int, since_day: int) -> pa.Table:
        pieces[name] += 1
        return windowed(daily, name, forget_days, since_day)

    monkeypatch.setattr(local, "windowed", counted)

    def profile_rows(flush_bytes: int, window_bytes: int, cached: bool) -> dict[str, Counter[tuple[object, ...]]]:
        if not cached:
            (store.root / "profiles.duckdb").unlink(missing_ok=True)
        monkeypatch.setattr(daily_module, "FLUSH_BYTES", flush_bytes)
        monkeypatch.setattr(daily_module, "WINDOW_BYTES", window_bytes)
        pieces.clear()
        with quiet_ibis():
            con = connect()
            profiles, _ = materialise_profiles(con, store, all_lake_files(store), SINCE, UNTIL, opts, threads=2)
            tables = {
                name: con.con.sql(f"SELECT * FROM {t.get_name()}").to_arrow_table() for name, t in profiles.items()
            }
            out = {name: _rows(t) for name, t in tables.items()}
            con.disconnect()
        return out

    at_once = profile_rows(2**40, 2**40, cached=False)  # one insert per table, each windowed whole
    assert sum(sum(rows.values()) for rows in at_once.values()) > 5_000
    assert max(pieces.values()) == 1
    # One insert per day and table; days from the cache; big tables windowed in pieces of whole groups.
    for flush_bytes, window_bytes, cached in ((1, 2**40, False), (1, 2**40, True), (1, 20_000, False)):
        assert profile_rows(flush_bytes, window_bytes, cached) == at_once, (flush_bytes, window_bytes, cached)
    assert pieces["p_api"] > 2


def _rows(table: pa.Table) -> Counter[tuple[object, ...]]:
    return Counter(tuple(row.values()) for row in table.to_pylist())


@pytest.mark.parametrize("forget_days", [30, 2])
def test_windowed_profiles_equal_the_window_expressions(store: StoreLayout, forget_days: int) -> None:
    """numpy's windowed sums (:func:`windowed`) give the rows of the Ibis windows, null for null.

    With 2 forget days the windows leave out older days, so where a window starts matters too.
    """
    since_day = int(SINCE.timestamp() // SECONDS_PER_DAY)
    with quiet_ibis():
        con = connect()
        history = history_window(prepare(open_events(con, store, SINCE, UNTIL, 30)), SINCE, UNTIL, 30)
        daily = DailyProfiles.reduce(con.to_pyarrow(history.select(*DAY_COLUMNS, msg=history._k_msg)))
        compared = 0
        for name in [p.name for p in PAIRS] + ["vol", "err"]:
            write_table(con.con, f"daily_{name}_{forget_days}", daily[name])
            table = con.table(f"daily_{name}_{forget_days}")
            if name == "vol":
                expr = volume_window(table, forget_days)
                expr = expr.filter(expr.hour_idx >= since_day * 24)
            elif name == "err":
                expr = error_window(table, forget_days)
                expr = expr.filter(expr.b15 >= since_day * 96)
            else:
                expr = pair_window(table, PAIR_BY_NAME[name], forget_days)
                expr = expr.filter(expr.day >= since_day)
            want: pa.Table = con.to_pyarrow(expr)
            got = windowed(daily[name], name, forget_days, since_day)
            assert got.column_names == want.column_names, name
            want = want.cast(got.schema)  # DuckDB sums integers as HUGEINT
            assert _rows(got) == _rows(want), name
            compared += got.num_rows
        con.disconnect()
    assert compared > 2_000
    # Some windows are empty (a first day) and some not: both kinds of row were compared.
    p = windowed(daily["p"], "p", forget_days, since_day)
    assert 0 < p.column("p__pn").null_count < p.num_rows


def test_chunk_features_of_some_columns_compute_only_the_pairs_they_need(store: StoreLayout) -> None:
    """The default detectors need some pairs only; those give the same columns, and others are not touched.

    The profiles hold only the needed pairs, so a chunk that looked another up would fail.
    """
    assert {p.name for p in needed_pairs(["p_how_share"])} == {"p", "a", "x", "p_how"}
    opts = FeatureOptions()
    columns = needed_columns(registry.create(None, None))
    pairs = needed_pairs(columns)
    assert 3 < len(pairs) < len(PAIRS)
    files = all_lake_files(store)
    with quiet_ibis():
        con = connect()
        every, _ = materialise_profiles(con, store, files, SINCE, UNTIL, opts)
        some, _ = materialise_profiles(con, store, files, SINCE, UNTIL, opts, pairs=pairs)
        assert set(some) == {p.name for p in pairs} | {"vol", "err", "used", "net_used"}
        full, wanted = ChunkFeatures(con, every, opts), ChunkFeatures(con, some, opts, columns)
        for c_since, c_until in _chunks():
            events = open_events(con, store, c_since, c_until, 0, table_name="chunk_events")
            want = full(events, "chunk_events", c_since, c_until).select(columns)
            got = wanted(events, "chunk_events", c_since, c_until)
            assert got.num_rows > 0
            assert got.equals(want), c_since
        con.disconnect()


def test_chunk_features_do_not_depend_on_the_order_the_rows_are_read_in(store: StoreLayout) -> None:
    """A chunk's rows stay as read and its running figures follow time order: the same day read
    from its files in the opposite order gives the same table, row for row once both are in time
    order, and each table keeps the order its rows were read in."""
    opts = FeatureOptions()
    files = all_lake_files(store)
    c_since, c_until = SINCE, datetime(2023, 7, 9, tzinfo=UTC)
    with quiet_ibis():
        con = connect()
        profiles, _ = materialise_profiles(con, store, files, c_since, c_until, opts)
        engine = ChunkFeatures(con, profiles, opts)
        tables, reads = [], []
        for listed in (files, list(reversed(files))):
            events = open_events(con, store, c_since, c_until, 0, table_name="chunk_events", files=listed)
            read = con.con.sql("SELECT event_id FROM chunk_events").to_arrow_table().column("event_id").to_pylist()
            got = engine(events, "chunk_events", c_since, c_until)
            kept = set(got.column("event_id").to_pylist())
            assert got.column("event_id").to_pylist() == [e for e in read if e in kept]
            tables.append(got.sort_by(_TIME_ORDER))
            reads.append([e for e in read if e in kept])
        con.disconnect()
    assert reads[0] != reads[1]  # the day's rows did come in another order
    first, second = tables
    assert first.num_rows == second.num_rows > 1000
    assert first.equals(second)
