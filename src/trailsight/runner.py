"""Detect over a time range: features → detectors → scoring → findings → describe → save.

:func:`detect` is the one entry point the CLI, ``watch`` and notebooks use. It scores the
events of ``[since, until)`` against everything before each of them (the as-of features read
``forget_days`` of history before the range), in chunks of whole days so memory follows the
chunk, not the lake. Unusual events are kept across chunks and grouped at the end, so a burst
that crosses midnight is still one finding.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from trailsight import workers
from trailsight.config import Settings
from trailsight.detectors import registry
from trailsight.detectors.base import Columns, Detector
from trailsight.errors import ConfigError, StoreError
from trailsight.features.asof import (
    CARRIED_COLUMNS,
    PAIRS,
    SECONDS_PER_DAY,
    Pair,
    history_window,
    prepare,
)
from trailsight.features.behaviour import CONTEXT_COLUMNS, BehaviourContext, ContextOptions
from trailsight.features.chunk import ChunkFeatures, needed_pairs
from trailsight.features.daily import (
    CONTEXT_TABLES,
    DAILY_VERSION,
    DAY_COLUMNS,
    DailyProfiles,
    daily_schemas,
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
    quiet_ibis,
    read_events,
    view_files,
)
from trailsight.findings.group import group_findings
from trailsight.findings.model import Finding
from trailsight.scoring.combine import combine
from trailsight.scoring.options import ScoringOptions
from trailsight.store.layout import StoreLayout
from trailsight.store.profiles import ProfileCache, fingerprint

#: Feature columns the grouping reads besides the detectors' own.
_GROUP_COLUMNS = ("api", "p_age_days", "gated_account", "gated_principal")
#: Feature columns :func:`add_context` reads to pick the rows that need population figures.
_CANDIDATE_COLUMNS = ("p_api_days", "p_days", "x_api_days")

_US = timedelta(microseconds=1)

_RUNS_DDL = """CREATE TABLE IF NOT EXISTS runs(
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    since TIMESTAMPTZ, "until" TIMESTAMPTZ, events BIGINT, unusual_events BIGINT,
    findings INTEGER, detectors VARCHAR)"""


@dataclass
class RunStats:
    """What one :func:`detect` run did (filled in as it goes)."""

    since: datetime | None = None
    until: datetime | None = None
    events: int = 0
    unusual_events: int = 0
    findings: int = 0
    chunks: int = 0
    seconds: float = 0.0
    detectors: list[str] = field(default_factory=list)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ConfigError(f"time {value.isoformat()} has no time zone; give UTC times (…Z)")
    return value.astimezone(UTC)


def default_range(store: Path | StoreLayout) -> tuple[datetime, datetime]:
    """The default range: the last UTC day that has data in the lake."""
    layout = store if isinstance(store, StoreLayout) else StoreLayout(Path(store))
    days = lake_day_range(layout)
    if days is None:
        raise StoreError(f"{layout.lake}: the lake is empty; run `trailsight ingest` first")
    return day_range(days[1])


def day_range(day: date) -> tuple[datetime, datetime]:
    """``[since, until)`` of one UTC day."""
    since = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return since, since + timedelta(days=1)


def _chunks(since: datetime, until: datetime, days: int) -> list[tuple[datetime, datetime]]:
    out = []
    start = since
    while start < until:
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=days)
        end = min(until, midnight)
        out.append((start, end))
        start = end
    return out


def _needed_columns(detectors: Sequence[Detector]) -> list[str]:
    """The as-of feature columns the detectors and the grouping read (context columns excluded)."""
    cols = dict.fromkeys([*CARRIED_COLUMNS, *_GROUP_COLUMNS, *_CANDIDATE_COLUMNS])
    for det in detectors:
        cols.update(dict.fromkeys(c for c in det.requires if c not in CONTEXT_COLUMNS))
    return list(cols)


def needs_context(detectors: Sequence[Detector]) -> bool:
    """True when some detector reads the peer / automation context columns."""
    return any(c in CONTEXT_COLUMNS for det in detectors for c in det.requires)


def add_context(features: pa.Table, context: BehaviourContext | None) -> pa.Table:
    """Add the peer / automation / account-usage columns (population figures on thin-history rows only)."""
    if context is None:
        return features
    cols = Columns(features)
    thin = (cols.num("p_api_days") <= 2.0 + 0.1 * cols.num("p_days")) | (cols.num("x_api_days") <= 2.0)
    return context.augment(features, thin)


def score_table(
    features: pa.Table, detectors: Sequence[Detector], scoring: ScoringOptions
) -> tuple[list[dict[str, Any]], int]:
    """Run the detectors over a feature table; return its unusual events (as dicts) and their count."""
    cols = Columns(features)
    scores = [det.score(features, cols) for det in detectors]
    combined = combine(features, scores, scoring)
    idx = np.flatnonzero(combined.unusual)
    rows: list[dict[str, Any]] = features.take(pa.array(idx, type=pa.int64())).to_pylist() if len(idx) else []
    for row, i in zip(rows, idx, strict=True):
        row["_score"] = float(combined.score[i])
        row["_risk"] = float(combined.risk[i])
        row["_what"] = float(combined.what[i])
        row["_ctx"] = float(combined.context[i])
        row["_corroborated"] = bool(combined.corroborated[i])
        row["_gated"] = bool(combined.gated[i])
        row["_reasons"] = combined.reasons(int(i))
    return rows, len(rows)


def detect(
    store: Path | str | StoreLayout,
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None = None,
    detectors: Sequence[str] | None = None,
    *,
    save: bool = True,
    describe: bool = True,
    min_score: float | None = None,
    stats: RunStats | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Finding]:
    """Score ``[since, until)`` of the store's lake and return its findings, best first.

    ``since``/``until`` default to the last day with data. ``detectors`` names the detectors
    to run (default: every registered one not disabled in ``[detectors.<name>]``). Findings
    scoring under ``min_score`` (default ``[detect] min_score``, 0.5) are dropped (gated ones are kept); the rest
    are saved to the state database unless ``save`` is False.
    """
    with quiet_ibis():
        return _detect(store, since, until, settings, detectors, save, describe, min_score, stats, progress)


def _detect(
    store: Path | str | StoreLayout,
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None,
    detectors: Sequence[str] | None,
    save: bool,
    describe: bool,
    min_score: float | None,
    stats: RunStats | None,
    progress: Callable[[str], None] | None,
) -> list[Finding]:
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    layout = store if isinstance(store, StoreLayout) else StoreLayout(Path(store))
    if not layout.lake.is_dir():
        raise StoreError(f"{layout.root}: not a trailsight store (no lake/ folder); run `trailsight ingest` first")
    if since is None or until is None:
        d_since, d_until = default_range(layout)
        since = since if since is not None else d_since
        until = until if until is not None else d_until
    since, until = _utc(since), _utc(until)
    if since >= until:
        raise ConfigError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    feat_opts = FeatureOptions.from_settings(settings)
    scoring = ScoringOptions.from_settings(settings)
    chunk_days = int(settings.section("detect").get("chunk_days", 1)) if settings is not None else 1
    if chunk_days < 1:
        raise ConfigError("[detect] chunk_days must be at least 1")
    threads = _threads(settings)
    workers_setting = settings.section("detect").get("workers") if settings is not None else None
    dets = registry.create(detectors, settings)
    st = stats if stats is not None else RunStats()
    st.since, st.until, st.detectors = since, until, [d.name for d in dets]
    columns = _needed_columns(dets)

    # A scratch database on disk (compressed, evictable) rather than in memory: the daily tables
    # and the profiles of a long range then cost disk, not RAM. It goes when the run ends.
    work_dir = settings.section("detect").get("work_dir") if settings is not None else None
    if work_dir is not None and not isinstance(work_dir, str):
        raise ConfigError("[detect] work_dir must be a folder path (text)")
    scratch = tempfile.TemporaryDirectory(prefix="trailsight-detect-", dir=work_dir)
    con = connect(database=Path(scratch.name) / "work.duckdb")
    pool = None
    pending: list[threading.Thread] = []  # the profile cache's writer
    try:
        unusual: list[dict[str, Any]] = []
        files = all_lake_files(layout)  # listed once: every chunk picks its days from it
        spans = [
            (c_since, c_until, lake_files_between(layout, c_since.date(), (c_until - _US).date(), files))
            for c_since, c_until in _chunks(since, until, chunk_days)
        ]
        spans = [span for span in spans if span[2]]  # a chunk without events has nothing to score
        processes = workers.choose(workers_setting, len(spans), dets)
        if processes:
            pool = workers.start(processes)  # they start while the profiles are built
        open_events(con, layout, since, until, feat_opts.forget_days, files=files)  # fails on an empty range
        profiles, daily = _materialise_profiles(
            con, layout, files, since, until, feat_opts, threads, background=pending, pairs=needed_pairs(columns)
        )
        context = (
            BehaviourContext(
                daily["pday"], daily["papi"], feat_opts.forget_days, ContextOptions.from_settings(settings)
            )
            if needs_context(dets)
            else None
        )
        if pool is not None:
            database, tables, shared_context = workers.share(
                con, Path(scratch.name), profiles, daily if context is not None else None
            )
            job = workers.Job(
                run=uuid.uuid4().hex,
                database=database,
                profiles=tables,
                context=shared_context,
                detectors=dets,
                features=feat_opts,
                context_options=ContextOptions.from_settings(settings),
                scoring=scoring,
                columns=columns,
                threads=max(1, (os.cpu_count() or 1) // processes),
            )
            results: Iterator[tuple[int, list[dict[str, Any]]]] = workers.score(pool, job, spans)
        else:
            results = _score_here(con, profiles, context, feat_opts, columns, dets, scoring, spans, threads)
        for (c_since, _, _), (n_events, rows) in zip(spans, results, strict=True):
            unusual += rows
            st.events += n_events
            st.chunks += 1
            if progress is not None:
                progress(f"{c_since:%Y-%m-%d %H:%M}: {n_events} events, {len(rows)} unusual")
        st.unusual_events = len(unusual)
        findings = group_findings(unusual, timedelta(minutes=scoring.gap_minutes), scoring.context_weight)
        floor = scoring.min_score if min_score is None else min_score
        # Gated findings (a newcomer calling high-risk APIs) are raised whatever their score.
        findings = [f for f in findings if f.gated or f.score >= floor]
        if findings and describe:
            findings = _describe(con, layout, findings, since, until, feat_opts, settings)
    finally:
        for thread in pending:
            thread.join()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        con.disconnect()
        scratch.cleanup()
    findings = _suppress(layout, findings, settings)
    st.findings = len(findings)
    st.seconds = time.perf_counter() - started
    if save:
        _save(layout, findings, st, started_at)
    return findings


def score_chunk_features(
    features: pa.Table, context: BehaviourContext | None, dets: Sequence[Detector], scoring: ScoringOptions
) -> tuple[int, list[dict[str, Any]]]:
    """(events, unusual rows) of one chunk's as-of features: context added, detectors run, combined."""
    features = add_context(features, context)
    rows, _ = score_table(features, dets, scoring)
    return features.num_rows, rows


def _score_here(
    con: Any,
    profiles: dict[str, Any],
    context: BehaviourContext | None,
    opts: FeatureOptions,
    columns: Sequence[str],
    dets: Sequence[Detector],
    scoring: ScoringOptions,
    spans: Sequence[tuple[datetime, datetime, list[Path]]],
    threads: int,
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Each span's (events, unusual rows), in span order, scored in this process by ``threads`` threads.

    Chunks are independent given the profiles, so a few run at once, each on its own connection
    (DuckDB, Arrow and numpy let go of the GIL for much of their work).
    """
    if not spans:
        return
    chunk_features = ChunkFeatures(con, profiles, opts, columns)
    # The Ibis view the chunks' SQL is compiled from (once); each chunk reads its own files.
    chunk_view = read_events(con, spans[0][2], "chunk_events")

    def score_chunk(span: tuple[datetime, datetime, list[Path]]) -> tuple[int, list[dict[str, Any]]]:
        c_since, c_until, days = span
        with _cursor(con) as db:
            view_files(db, days, "chunk_events")
            features = chunk_features(chunk_view, "chunk_events", c_since, c_until, db)
        return score_chunk_features(features, context, dets, scoring)

    with ThreadPoolExecutor(max(1, min(threads, len(spans)))) as pool:
        yield from pool.map(score_chunk, spans)


def _keep(cache: ProfileCache, days: queue.Queue[Any], forget_days: int) -> None:
    """The profile cache's writer: store the days put on ``days`` until None, then close the cache."""
    try:
        cache.store_from(days, forget_days)
    finally:
        cache.__exit__(None, None, None)


def _in_order(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Sequence[Any], ahead: int) -> Iterator[Any]:
    """``fn`` of each item, in order, with at most ``ahead`` items submitted and not yet taken."""
    pending: deque[Any] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= max(1, ahead):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _threads(settings: Settings | None) -> int:
    """``[detect] threads``: days worked on at once (default: the CPUs, at most 4)."""
    value = settings.section("detect").get("threads") if settings is not None else None
    if value is None:
        return max(1, min(4, os.cpu_count() or 1))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("[detect] threads must be a positive integer")
    return value


@contextmanager
def _cursor(con: Any) -> Iterator[Any]:
    """A connection of its own to the run's database, for one thread (closed after)."""
    db = con.con.cursor()
    try:
        db.execute("SET TimeZone = 'UTC'")
        yield db
    finally:
        db.close()


def _materialise_profiles(
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
    run goes on. Only the ``pairs`` given get a windowed profile (the daily tables, which the
    cache keeps, always hold every pair).
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
        day: fingerprint(paths, DAILY_VERSION)
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
            schemas = {n: t.schema for n, t in daily_schemas().items()}
            if not cache.matches(schemas):
                held = set()  # a cache of another shape: build every day (the next store clears it)
            for name in schemas if held else ():
                # One table at a time, straight into the database: the history never sits in memory whole.
                builder.extend(cache.load({name: schemas[name]}, held) or {})
        todo = sorted(set(by_day) - held)
        if todo:
            t = prepare(read_events(con, by_day[todo[0]], "_ts_day_events"))
            t = history_window(t, since, until, opts.forget_days)
            sql = str(con.compile(t.select(*DAY_COLUMNS, msg=t._k_msg)))

        def reduce_day(day: date) -> dict[str, pa.Table]:
            with _cursor(con) as db:
                view_files(db, by_day[day], "_ts_day_events")
                events = db.sql(sql).to_arrow_table()
            return DailyProfiles.reduce(events)

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
    profiles: dict[str, Any] = {}
    for name in [p.name for p in pairs] + ["vol", "err"]:
        stored = f"_ts_profile_{name}_{tag}"
        for k, piece in enumerate(builder.pieces(name, window_spec(name)[0])):
            write_table(con.con, stored, windowed(piece, name, opts.forget_days, since_day), append=k > 0)
        profiles[name] = con.table(stored)
    profiles["used"] = con.table(builder.finish("used"))
    return profiles, daily


def _describe(
    con: Any,
    layout: StoreLayout,
    findings: list[Finding],
    since: datetime,
    until: datetime,
    opts: FeatureOptions,
    settings: Settings | None,
) -> list[Finding]:
    """Complete findings with usual/unusual evidence and explanations (trailsight.findings.describe)."""
    open_events(con, layout, since, until, opts.forget_days)
    return describe_over(con, findings, settings, "events")


def describe_over(con: Any, findings: list[Finding], settings: Settings | None, events: str) -> list[Finding]:
    """:func:`trailsight.findings.describe.describe` over the view ``events`` of ``con``, best first."""
    from trailsight.findings.describe import describe

    described = describe(findings, con, settings=settings, events=events)
    # describe keeps our scores; make sure the order stays best first.
    return sorted(described, key=lambda f: (-f.score, f.first_seen, f.id))


def _suppress(layout: StoreLayout, findings: list[Finding], settings: Settings | None) -> list[Finding]:
    """Mark findings matched by suppression rules or analyst feedback as Suppressed."""
    if not findings:
        return findings
    from trailsight.findings import suppress

    rules = list(suppress.feedback_rules(layout)) if layout.state.exists() else []
    path = settings.section("detect").get("suppressions") if settings is not None else None
    if path:
        base = settings.path.parent if settings is not None and settings.path is not None else Path()
        rules += suppress.load_rules(base / str(path))
    if not rules:
        return findings
    # Expiry is judged at each finding's time, not the wall clock: a backfill meets the rules as they stood.
    return suppress.apply_suppressions(findings, rules)


def _save(layout: StoreLayout, findings: list[Finding], st: RunStats, started_at: datetime) -> None:
    from trailsight.store.findings import connect_state, save_findings

    with connect_state(layout, read_only=False) as con:
        if findings:
            save_findings(con, findings)
        con.execute(_RUNS_DDL)
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                uuid.uuid4().hex,
                started_at,
                datetime.now(UTC),
                st.since,
                st.until,
                st.events,
                st.unusual_events,
                st.findings,
                ",".join(st.detectors),
            ],
        )


def top_findings(findings: Sequence[Finding], max_findings: int | None, min_score: float = 0.0) -> list[Finding]:
    """The best ``max_findings`` findings scoring at least ``min_score`` (input is best first)."""
    kept = [f for f in findings if f.score >= min_score]
    return kept if max_findings is None else kept[:max_findings]


__all__ = ["RunStats", "default_range", "detect", "replace", "score_table", "top_findings"]
