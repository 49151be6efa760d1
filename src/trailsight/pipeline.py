"""Detect over a time range: features → detectors → scoring → grouping → effects → description → sessions →
lineage → suppression → stories → save.

:func:`detect` is the one entry point the CLI, ``watch``, the Spark job and notebooks use, and
the one place that says what a run does. How the features are computed is an engine's business
(:mod:`trailsight.engines`): the default :class:`~trailsight.engines.local.LocalEngine` scores
the events of ``[since, until)`` against everything before each of them in chunks of whole
days; :class:`~trailsight.engines.spark.SparkEngine` does the same on Spark. Unusual events are
kept across chunks and grouped at the end, so a burst that crosses midnight is still one finding.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trailsight import stories
from trailsight.config import Settings
from trailsight.detectors import registry
from trailsight.engines.base import FeatureEngine, FeaturePlan
from trailsight.engines.local import LocalEngine
from trailsight.errors import ConfigError
from trailsight.features.source import quiet_ibis
from trailsight.finding import Finding, UnusualEvent
from trailsight.findings import suppress
from trailsight.findings.describe import describe as describe_findings
from trailsight.findings.group import group_findings
from trailsight.findings.session import add_session_calls
from trailsight.findings.touched import add_what_was_done
from trailsight.scoring.events import ChunkScorer
from trailsight.scoring.options import ScoringOptions
from trailsight.store import lineage
from trailsight.store.findings import connect_state, save_findings
from trailsight.store.layout import StoreLayout
from trailsight.timespan import utc

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
    stories: int = 0
    chunks: int = 0
    seconds: float = 0.0
    detectors: list[str] = field(default_factory=list)


def default_range(store: Path | StoreLayout) -> tuple[datetime, datetime]:
    """The default range of the store's lake: its last UTC day with data."""
    return LocalEngine().default_range(_layout(store))


def detect(
    store: Path | str | StoreLayout,
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None = None,
    detectors: Sequence[str] | None = None,
    *,
    engine: FeatureEngine | None = None,
    save: bool = True,
    describe: bool = True,
    min_score: float | None = None,
    stats: RunStats | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Finding]:
    """Score ``[since, until)`` of the store's events and return its findings, best first.

    ``since``/``until`` default to the last day with data. ``detectors`` names the detectors
    to run (default: every registered one not disabled in ``[detectors.<name>]``). ``engine``
    computes the features (default: :class:`~trailsight.engines.local.LocalEngine` over the
    store's lake). Findings scoring under ``min_score`` (default ``[detect] min_score``, 0.5) are
    dropped (gated ones are kept); the rest are saved to the state database unless ``save`` is
    False.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    layout = _layout(store)
    engine = engine if engine is not None else LocalEngine()
    if since is None or until is None:
        d_since, d_until = engine.default_range(layout)
        since = since if since is not None else d_since
        until = until if until is not None else d_until
    since, until = utc(since), utc(until)
    if since >= until:
        raise ConfigError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    scoring = ScoringOptions.from_settings(settings)
    dets = registry.create(detectors, settings)
    st = stats if stats is not None else RunStats()
    st.since, st.until, st.detectors = since, until, [d.name for d in dets]
    plan = FeaturePlan.for_detectors(dets, ChunkScorer(tuple(dets), scoring), settings)
    with quiet_ibis(), engine.open(layout, since, until, plan) as opened:
        unusual: list[UnusualEvent] = []
        for label, chunk in opened.chunks():
            unusual += chunk.unusual
            st.events += chunk.events
            st.chunks += 1
            if progress is not None:
                progress(f"{label}: {chunk.events} events, {len(chunk.unusual)} unusual")
        st.unusual_events = len(unusual)
        groups = group_findings(unusual, timedelta(minutes=scoring.gap_minutes), scoring.context_weight)
        floor = scoring.min_score if min_score is None else min_score
        # Gated findings (a newcomer calling high-risk APIs) are raised whatever their score.
        findings = [f for f in groups if f.gated or f.score >= floor]
        # The groups below the alert level are weak signals: alone they are not raised, in a story they count.
        weak = [f for f in groups if not (f.gated or f.score >= floor)]
        if findings:  # what the calls did: effects, resources, counterparties, severity
            with opened.calls_for(findings) as (con, view):
                findings = add_what_was_done(findings, con, view)
        if findings and describe:
            with opened.events_for(findings) as (con, view):
                described = describe_findings(findings, con, settings=settings, events=view)
            # describe keeps our scores; make sure the order stays best first.
            findings = sorted(described, key=lambda f: (-f.score, f.first_seen, f.id))
        with opened.calls_for(findings) as (con, view):
            # Then everything the same session did in the burst, unusual or not (event_ids only),
            if findings:
                findings = add_session_calls(findings, con, view, timedelta(minutes=scoring.gap_minutes))
            # and the credential lineage the range's calls made, which the stories follow.
            made = lineage.links_from_view(con, view, since, until)
    # Suppression marks members, it does not drop them: a suppressed member still joins its story.
    findings = suppress_findings(layout, findings, settings)
    story_run = stories.tell(layout, findings, weak, since, until, settings, made=made)
    told = suppress_findings(layout, story_run.stories, settings)
    findings = sorted([*told, *story_run.findings], key=lambda f: (-f.score, f.first_seen, f.id))
    st.stories = len(told)
    st.findings = len(findings)
    st.seconds = time.perf_counter() - started
    if save:
        save_run(layout, findings, st, started_at, story_run)
    return findings


def suppress_findings(layout: StoreLayout, findings: list[Finding], settings: Settings | None) -> list[Finding]:
    """Mark findings matched by suppression rules (``[detect] suppressions``) or analyst feedback as Suppressed."""
    if not findings:
        return findings
    rules = list(suppress.feedback_rules(layout)) if layout.state.exists() else []
    path = settings.section("detect").get("suppressions") if settings is not None else None
    if path:
        base = settings.path.parent if settings is not None and settings.path is not None else Path()
        rules += suppress.load_rules(base / str(path))
    if not rules:
        return findings
    # Expiry is judged at each finding's time, not the wall clock: a backfill meets the rules as they stood.
    return suppress.apply_suppressions(findings, rules)


def save_run(
    layout: StoreLayout,
    findings: list[Finding],
    st: RunStats,
    started_at: datetime,
    story_run: stories.StoryRun | None = None,
) -> None:
    """Save the run's findings, its lineage and a row of its figures (table ``runs``) to the state database."""
    with connect_state(layout, read_only=False) as con:
        if findings:
            save_findings(con, findings)
        if story_run is not None:
            stories.save(con, story_run)
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


def _layout(store: Path | str | StoreLayout | Any) -> StoreLayout:
    return store if isinstance(store, StoreLayout) else StoreLayout(Path(store))


__all__ = ["RunStats", "default_range", "detect", "save_run", "suppress_findings", "top_findings"]
