"""Score a chunk's feature rows: detectors → combined event scores → its unusual events.

:class:`ChunkScorer` is what an engine (:mod:`trailsight.engines`) applies to each chunk of
features it computes, wherever it computes them (in this process, in a worker process, on a
Spark driver); it is a small frozen, picklable value. What comes back is the number of events
scored and the :class:`~trailsight.finding.UnusualEvent` of each row over the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from trailsight.detectors.base import Columns, Detector
from trailsight.features.behaviour import BehaviourContext, add_context
from trailsight.finding import UnusualEvent
from trailsight.scoring.combine import combine
from trailsight.scoring.options import ScoringOptions


def unusual_events(features: pa.Table, detectors: Sequence[Detector], scoring: ScoringOptions) -> list[UnusualEvent]:
    """Run the detectors over a feature table and return its unusual events, in row order."""
    cols = Columns(features)
    scores = [det.score(features, cols) for det in detectors]
    combined = combine(features, scores, scoring)
    idx = np.flatnonzero(combined.unusual)
    if not len(idx):
        return []
    rows = features.take(pa.array(idx, type=pa.int64())).to_pylist()
    return [
        UnusualEvent(
            row=row,
            score=float(combined.score[i]),
            risk=float(combined.risk[i]),
            what=float(combined.what[i]),
            context=float(combined.context[i]),
            corroborated=bool(combined.corroborated[i]),
            gated=bool(combined.gated[i]),
            reasons=tuple(combined.reasons(int(i))),
        )
        for row, i in zip(rows, idx, strict=True)
    ]


@dataclass(frozen=True)
class ScoredChunk:
    """What scoring one chunk gives: how many events it had, and the unusual ones."""

    events: int
    unusual: list[UnusualEvent]


@dataclass(frozen=True)
class ChunkScorer:
    """Scores one chunk's as-of features: context added, detectors run, scores combined."""

    detectors: Sequence[Detector]
    scoring: ScoringOptions

    def __call__(self, features: pa.Table, context: BehaviourContext | None) -> ScoredChunk:
        """The chunk's event count and unusual events (``context``: the peer / automation figures)."""
        features = add_context(features, context)
        return ScoredChunk(features.num_rows, unusual_events(features, self.detectors, self.scoring))


__all__ = ["ChunkScorer", "ScoredChunk", "unusual_events"]
