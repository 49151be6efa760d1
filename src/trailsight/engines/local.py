"""The local engine: as-of features in DuckDB and numpy, in this process or its worker processes.

:class:`LocalEngine` implements :class:`~trailsight.engines.base.FeatureEngine` over a store's
Parquet lake. Opening a range (:meth:`LocalEngine.open`) creates a scratch DuckDB database on
disk, registers the range's events (the as-of features read ``forget_days`` of history before
the range) and builds the profiles of the whole range once, one lake day at a time, with whole
days kept in the store's profile cache (:mod:`trailsight.store.profiles`) by a thread of their
own. The range is then scored in chunks of whole days (``[detect] chunk_days``), so memory
follows the chunk, not the lake: a few chunks at once in threads (``[detect] threads``), or in
worker processes (``[detect] workers``, :mod:`trailsight.engines.local_workers`).
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from trailsight.engines import local_workers as workers
from trailsight.engines.base import FeaturePlan
from trailsight.errors import ConfigError, StoreError
from trailsight.features.asof import PAIRS, SECONDS_PER_DAY, Pair, history_window, prepare
from trailsight.features.behaviour import BehaviourContext
from trailsight.features.chunk import ChunkFeatures, needed_pairs
from trailsight.features.daily import (
    CONTEXT_TABLES,
    DAILY_VERSION,
    DailyProfiles,
    daily_schemas,
    day_columns,
    window_spec,
    windowed,
    write_table,
)
from trailsight.features.options import FeatureOptions
from trailsight.features.source import (
    all_lake_files,
    connect,
    event_days,
    file_date,
    lake_day_range,
    lake_files_between,
    open_events,
    read_events,
    view_files,
)
from trailsight.finding import Finding
from trailsight.scoring.events import ScoredChunk
from trailsight.store.layout import StoreLayout
from trailsight.store.profiles import ProfileCache, fingerprint
from trailsight.timespan import day_range

_US = timedelta(microseconds=1)

#: A chunk of the range: its start, its end and the lake files of its days.
Span = tuple[datetime, datetime, list[Path]]


class LocalEngine:
    """Features from the store's lake, computed by DuckDB and numpy on this machine."""

    def default_range(self, layout: StoreLayout) -> tuple[datetime, datetime]:
        """The last UTC day that has data in the lake."""
        _require_lake(layout)
        days = lake_day_range(layout)
        if days is None:
            raise StoreError(f"{layout.lake}: the lake is empty; run `trailsight ingest` first")
        return day_range(days[1])

    @contextmanager
    def open(self, layout: StoreLayout, since: datetime, until: datetime, plan: FeaturePlan) -> Iterator[LocalRange]:
        """Open ``[since, until)``: scratch database, profiles, context; closed (and removed) on exit."""
        _require_lake(layout)
        options = _Options.from_settings(plan)
        # A scratch database on disk (compressed, evictable) rather than in memory: the daily tables
        # and the profiles of a long range then cost disk, not RAM. It goes when the run ends.
        scratch = tempfile.TemporaryDirectory(prefix="trailsight-detect-", dir=options.work_dir)
        con = connect(database=Path(scratch.name) / "work.duckdb")
        opened = LocalRange(con, Path(scratch.name), plan, options.threads)
        try:
            opened.prepare(layout, since, until, options)
            yield opened
        finally:
            opened.close()
            con.disconnect()
            scratch.cleanup()


def _require_lake(layout: StoreLayout) -> None:
    if not layout.lake.is_dir():
        raise StoreError(f"{layout.root}: not a trailsight store (no lake/ folder); run `trailsight ingest` first")


@dataclass(frozen=True)
class _Options:
    """The local engine's own settings (``[detect]`` chunk_days, threads, workers, work_dir)."""

    chunk_days: int
    threads: int
    workers: Any
    work_dir: str | None

    @classmethod
    def from_settings(cls, plan: FeaturePlan) -> _Options:
        section = plan.settings.section("detect") if plan.settings is not None else {}
        chunk_days = int(section.get("chunk_days", 1))
        if chunk_days < 1:
            raise ConfigError("[detect] chunk_days must be at least 1")
        threads = section.get("threads")
        if threads is None:
            threads = max(1, min(4, os.cpu_count() or 1))
        elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError("[detect] threads must be a positive integer")
        work_dir = section.get("work_dir")
        if work_dir is not None and not isinstance(work_dir, str):
            raise ConfigError("[detect] work_dir must be a folder path (text)")
        return cls(chunk_days, threads, section.get("workers"), work_dir)


class LocalRange:
    """A range the local engine opened: its chunks' spans, profiles and context in a scratch database."""

    def __init__(self, con: Any, folder: Path, plan: FeaturePlan, threads: int) -> None:
        self.con = con
        self.folder = folder
        self.plan = plan
        self.threads = threads
        self.spans: list[Span] = []
        self.profiles: dict[str, Any] = {}
        self.daily: dict[str, pa.Table] = {}
        self.context: BehaviourContext | None = None
        self.pool: ProcessPoolExecutor | None = None
        self.processes = 0
        self.pending: list[threading.Thread] = []  # the profile cache's writer
        self._layout: StoreLayout | None = None
        self._range: tuple[datetime, datetime] | None = None

    def prepare(self, layout: StoreLayout, since: datetime, until: datetime, options: _Options) -> None:
        """List the chunks, start the workers (if any), register the events and build the profiles."""
        self._layout, self._range = layout, (since, until)
        files = all_lake_files(layout)  # listed once: every chunk picks its days from it
        spans = [
            (c_since, c_until, lake_files_between(layout, c_since.date(), (c_until - _US).date(), files))
            for c_since, c_until in _chunks(since, until, options.chunk_days)
        ]
        self.spans = [span for span in spans if span[2]]  # a chunk without events has nothing to score
        processes = workers.choose(options.workers, len(self.spans), self.plan.scorer.detectors)
        if processes:
            self.processes = processes
            self.pool = workers.start(processes)  # they start while the profiles are built
        opts = self.plan.features
        open_events(self.con, layout, since, until, opts.forget_days, files=files)  # fails on an empty range
        self.profiles, self.daily = materialise_profiles(
            self.con,
            layout,
            files,
            since,
            until,
            opts,
            self.threads,
            background=self.pending,
            pairs=needed_pairs(self.plan.columns),
        )
        if self.plan.context:
            self.context = BehaviourContext(
                self.daily["pday"], self.daily["papi"], opts.forget_days, self.plan.context_options
            )

    def chunks(self) -> Iterator[tuple[str, ScoredChunk]]:
        """Each chunk's label (its start) and scored features, in time order."""
        results = self._score_in_workers() if self.pool is not None else self._score_here()
        for (c_since, _, _), scored in zip(self.spans, results, strict=True):
            yield f"{c_since:%Y-%m-%d %H:%M}", scored

    @contextmanager
    def events_for(self, findings: Sequence[Finding]) -> Iterator[tuple[Any, str]]:
        """The range's events (and the history before it) as the view ``events`` of the scratch database."""
        if self._layout is None or self._range is None:
            raise RuntimeError("LocalRange.events_for before prepare()")
        since, until = self._range
        open_events(self.con, self._layout, since, until, self.plan.features.forget_days)
        yield self.con, "events"

    @contextmanager
    def calls_for(self, findings: Sequence[Finding]) -> Iterator[tuple[Any, str]]:
        """The same view as :meth:`events_for`: the lake holds every call the effects read."""
        with self.events_for(findings) as opened:
            yield opened

    def close(self) -> None:
        """Wait for the profile cache's writer and stop the workers."""
        for thread in self.pending:
            thread.join()
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def _score_in_workers(self) -> Iterator[ScoredChunk]:
        assert self.pool is not None
        database, tables, shared_context = workers.share(
            self.con, self.folder, self.profiles, self.daily if self.context is not None else None
        )
        job = workers.Job(
            run=uuid.uuid4().hex,
            database=database,
            profiles=tables,
            context=shared_context,
            features=self.plan.features,
            context_options=self.plan.context_options,
            scorer=self.plan.scorer,
            columns=self.plan.columns,
            threads=max(1, (os.cpu_count() or 1) // self.processes),
        )
        return workers.score(self.pool, job, self.spans)

    def _score_here(self) -> Iterator[ScoredChunk]:
        """Each span scored in this process by ``threads`` threads, in span order.

        Chunks are independent given the profiles, so a few run at once, each on its own connection
        (DuckDB, Arrow and numpy let go of the GIL for much of their work).
        """
        if not self.spans:
            return
        chunk_features = ChunkFeatures(self.con, self.profiles, self.plan.features, self.plan.columns)
        # The Ibis view the chunks' SQL is compiled from (once); each chunk reads its own files.
        chunk_view = read_events(self.con, self.spans[0][2], "chunk_events")
        scorer, context = self.plan.scorer, self.context

        def score_chunk(span: Span) -> ScoredChunk:
            c_since, c_until, days = span
            with _cursor(self.con) as db:
                view_files(db, days, "chunk_events")
                features = chunk_features(chunk_view, "chunk_events", c_since, c_until, db)
            return scorer(features, context)

        with ThreadPoolExecutor(max(1, min(self.threads, len(self.spans)))) as pool:
            yield from pool.map(score_chunk, self.spans)


def _chunks(since: datetime, until: datetime, days: int) -> list[tuple[datetime, datetime]]:
    out = []
    start = since
    while start < until:
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=days)
        end = min(until, midnight)
        out.append((start, end))
        start = end
    return out


def _keep(cache: ProfileCache, days: queue.Queue[Any], forget_days: int) -> None:
    """The profile cache's writer: store the days put on ``days`` until None, then close the cache."""
    try:
        cache.store_from(days, forget_days)
    finally:
        cache.__exit__(None, None, None)


def _in_order(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any], ahead: int) -> Iterator[Any]:
    """``fn`` of each item, in order, with at most ``ahead`` items submitted and not yet taken."""
    pending: deque[Any] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= max(1, ahead):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextmanager
def _cursor(con: Any) -> Iterator[Any]:
    """A connection of its own to the run's database, for one thread (closed after)."""
    db = con.con.cursor()
    try:
        db.execute("SET TimeZone = 'UTC'")
        yield db
    finally:
        db.close()


def materialise_profiles(
    con: Any,
    layout: StoreLayout,
    files: Sequence[Path],
    since: datetime,
    until: datetime,
    opts: FeatureOptions,
    threads: int = 1,
    background: list[threading.Thread] | None = None,
    pairs: Sequence[Pair] = PAIRS,
) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """Build the profiles of the whole range once, one lake day at a time, and keep them as tables.

    Each day of the history (``forget_days`` before ``since`` up to ``until``) is read with only
    the columns the profiles need and reduced to daily tables (:mod:`trailsight.features.daily`);
    whole days are kept in, and read back from, the store's profile cache
    (:mod:`trailsight.store.profiles`). The windowed sums then run in numpy, one profile at a time
    (:func:`~trailsight.features.daily.windowed`). Returns the profile
    tables (Ibis, for :class:`~trailsight.features.chunk.ChunkFeatures`) and the ``pday`` and
    ``papi`` daily tables, which feed the behaviour context. With ``background``, the new days
    are written to the cache by a thread (appended to it; join it before the run ends) while the
    run goes on. Only the ``pairs`` given (those the run's detectors need) get daily tables and a
    windowed profile; the cache keeps a day under a fingerprint that names them, so a run that
    needs other pairs builds its days again.
    """
    since_day = int(since.timestamp() // SECONDS_PER_DAY)
    first, last = event_days(since, until, opts.forget_days)
    by_day: dict[date, list[Path]] = {}
    for path in lake_files_between(layout, first, last, files):
        by_day.setdefault(file_date(path) or first, []).append(path)
    tag = uuid.uuid4().hex[:8]
    builder = DailyProfiles(con.con, tag)
    sql = ""
    # Whole days inside the history window are the same for every run: they come from the cache.
    whole = {
        day: fingerprint(paths, DAILY_VERSION, [p.name for p in pairs])
        for day, paths in by_day.items()
        if first < day and datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) <= until
    }
    cache = ProfileCache(layout).__enter__()
    # New whole days go to the cache as they are built, from a thread of their own.
    fresh: queue.Queue[tuple[date, str, dict[str, pa.Table]] | None] = queue.Queue(maxsize=2 * threads)
    writer = threading.Thread(target=_keep, args=(cache, fresh, opts.forget_days), name="trailsight-profile-cache")
    writer.start()
    with ExitStack() as on_error:
        on_error.callback(writer.join)
        on_error.callback(fresh.put, None)
        held = cache.cached(whole)
        if held:
            schemas = {n: t.schema for n, t in daily_schemas(pairs).items()}
            if not cache.matches(schemas):
                held = set()  # a cache of another shape: build every day (the next store clears it)
            for name in schemas if held else ():
                # One table at a time, straight into the database: the history never sits in memory whole.
                builder.extend(cache.load({name: schemas[name]}, held) or {})
        todo = sorted(set(by_day) - held)
        if todo:
            t = prepare(read_events(con, by_day[todo[0]], "_ts_day_events"))
            t = history_window(t, since, until, opts.forget_days)
            sql = str(con.compile(t.select(*day_columns(pairs), msg=t._k_msg)))

        def reduce_day(day: date) -> dict[str, pa.Table]:
            with _cursor(con) as db:
                view_files(db, by_day[day], "_ts_day_events")
                events = db.sql(sql).to_arrow_table()
            return DailyProfiles.reduce(events, pairs)

        # Days are reduced a few at once and folded in day order, as one at a time would be; each
        # day's tables go into the scratch database (and the cache) and leave memory.
        with ThreadPoolExecutor(max(1, min(threads, len(todo)))) as pool:
            for day, tables in zip(todo, _in_order(pool, reduce_day, todo, 2 * threads), strict=True):
                builder.extend(tables)
                if day in whole:
                    fresh.put((day, whole[day], tables))
                del tables
        on_error.pop_all()
    fresh.put(None)  # the writer stores what is queued and closes the cache
    if background is None:
        writer.join()
    else:
        background.append(writer)
    daily = {name: builder.context(name) for name in CONTEXT_TABLES}
    # The windowed sums, one profile at a time in numpy; only the rows of the scored days are
    # kept (a chunk looks nothing else up). The api users stay daily: a chunk joins them in SQL.
    names = [p.name for p in pairs] + ["vol", "err"]
    pieces = ((name, k, piece) for name in names for k, piece in enumerate(builder.pieces(name, window_spec(name)[0])))

    def window(job: tuple[str, int, pa.Table]) -> tuple[str, int, pa.Table]:
        name, k, piece = job
        return name, k, windowed(piece, name, opts.forget_days, since_day)

    # A few profiles are windowed at once; they go into the database one after the other, in order.
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for name, k, table in _in_order(pool, window, pieces, threads):
            write_table(con.con, f"_ts_profile_{name}_{tag}", table, append=k > 0)
    profiles: dict[str, Any] = {name: con.table(f"_ts_profile_{name}_{tag}") for name in names}
    profiles["used"] = con.table(builder.finish("used"))
    profiles["net_used"] = con.table(builder.finish("net_used"))
    return profiles, daily


__all__ = ["LocalEngine", "LocalRange", "materialise_profiles"]
