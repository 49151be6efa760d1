"""The feature-engine protocol: what a run needs from whatever computes its features.

:func:`trailsight.pipeline.detect` writes *what* a run does once (features → detectors →
scoring → grouping → description → suppression → save); an engine supplies *how* the features
are computed. It opens a time range (:meth:`FeatureEngine.open`), and the open range

* yields the range's chunks, each chunk's as-of features, with their behaviour context, scored by
  the plan's :class:`~trailsight.scoring.events.ChunkScorer` where the engine computed them (a
  worker process or a Spark driver never ships a feature table back, only unusual events);
* fetches the events the descriptions read (:meth:`OpenRange.events_for`), as a DuckDB view;
* fetches the calls whose requests say what the findings did, the calls of their sessions and
  the range's lineage calls (:meth:`OpenRange.calls_for`), as a DuckDB view.

Two engines implement it: :class:`trailsight.engines.local.LocalEngine` (DuckDB and numpy in
this process or its worker processes, the default) and
:class:`trailsight.engines.spark.SparkEngine` (Apache Spark through Ibis).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from trailsight.config import Settings
from trailsight.detectors.base import Detector
from trailsight.features.asof import CARRIED_COLUMNS
from trailsight.features.behaviour import CANDIDATE_COLUMNS, CONTEXT_COLUMNS, ContextOptions
from trailsight.features.options import FeatureOptions
from trailsight.finding import Finding
from trailsight.scoring.events import ChunkScorer, ScoredChunk
from trailsight.store.layout import StoreLayout

#: Feature columns the grouping reads besides the detectors' own.
GROUP_COLUMNS = ("api", "p_age_days", "a_age_days", "gated_account", "gated_principal")


def needed_columns(detectors: Sequence[Detector]) -> list[str]:
    """The as-of feature columns the detectors and the grouping read (context columns excluded)."""
    cols = dict.fromkeys([*CARRIED_COLUMNS, *GROUP_COLUMNS, *CANDIDATE_COLUMNS])
    for det in detectors:
        cols.update(dict.fromkeys(c for c in det.requires if c not in CONTEXT_COLUMNS))
    return list(cols)


def needs_context(detectors: Sequence[Detector]) -> bool:
    """True when some detector reads the peer / automation context columns."""
    return any(c in CONTEXT_COLUMNS for det in detectors for c in det.requires)


@dataclass(frozen=True, kw_only=True)
class FeaturePlan:
    """What a run asks of an engine: which features, with or without context, scored how."""

    columns: tuple[str, ...]
    context: bool
    features: FeatureOptions
    context_options: ContextOptions
    scorer: ChunkScorer
    settings: Settings | None = None

    @classmethod
    def for_detectors(
        cls, detectors: Sequence[Detector], scorer: ChunkScorer, settings: Settings | None
    ) -> FeaturePlan:
        """The plan that feeds ``detectors`` (their columns, the context when one of them reads it)."""
        return cls(
            columns=tuple(needed_columns(detectors)),
            context=needs_context(detectors),
            features=FeatureOptions.from_settings(settings),
            context_options=ContextOptions.from_settings(settings),
            scorer=scorer,
            settings=settings,
        )


@runtime_checkable
class OpenRange(Protocol):
    """A range an engine opened: its scored chunks and the events behind its findings."""

    def chunks(self) -> Iterator[tuple[str, ScoredChunk]]:
        """Each chunk's label (for progress) and scored features, in time order."""
        ...

    def events_for(self, findings: Sequence[Finding]) -> AbstractContextManager[tuple[Any, str]]:
        """An Ibis DuckDB connection and the name of its view holding the events ``findings`` need described."""
        ...

    def calls_for(self, findings: Sequence[Finding]) -> AbstractContextManager[tuple[Any, str]]:
        """An Ibis DuckDB connection and the name of its view for :func:`trailsight.findings.touched.add_what_was_done`.

        Also the view :func:`trailsight.findings.session.add_session_calls` and
        :func:`trailsight.store.lineage.links_from_view` read. It holds the range's events and the
        history before them, or at least the findings' own events, the calls of the APIs
        ``effects.csv`` lists, the calls of the findings' sessions, the range's successful
        lineage calls, and each (account, principal)'s first event.
        """
        ...


@runtime_checkable
class FeatureEngine(Protocol):
    """Computes the as-of features of a time range (see the module docstring)."""

    def default_range(self, layout: StoreLayout) -> tuple[datetime, datetime]:
        """The range scored when none is given: the last UTC day with events."""
        ...

    def open(
        self, layout: StoreLayout, since: datetime, until: datetime, plan: FeaturePlan
    ) -> AbstractContextManager[OpenRange]:
        """Open ``[since, until)`` of ``layout``'s events (and the history before it) for ``plan``."""
        ...


__all__ = ["GROUP_COLUMNS", "FeatureEngine", "FeaturePlan", "OpenRange", "needed_columns", "needs_context"]
