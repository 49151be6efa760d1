"""Combine detector scores into one score per event, weighted by the API's risk.

Algorithm, in plain words: each detector that *fired* on an event contributes its score ``s``
times its weight ``w``; the contributions combine like independent pieces of evidence
(noisy-or: ``1 − Π(1 − w·s)``), with one twist — novelty of *what* was done (API-level
detectors) and novelty of *where/how* it was done (network, agent, hour, volume) corroborate
each other, so when both kinds fired the weaker kind counts fully, while context alone counts
half. The result is scaled by the API's risk weight from the catalog
(``0.35 + 0.65 · risk``): a new ``StopLogging`` weighs far more than a new ``DescribeInstances``.

Gated events (too little account or principal history) keep their score for the record but
are only *unusual* when their API is dangerous (risk ≥ ``gated_risk``).

The combiner takes any set of :class:`~trailsight.detectors.base.DetectorScores`, so a new
detector (a learned model, say) is combined like the seed ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from trailsight.detectors.base import BoolArray, DetectorScores, FloatArray
from trailsight.findings.model import Reason
from trailsight.scoring.options import ScoringOptions

#: Detectors that say *what* was done is unusual; every other detector is context.
WHAT_DETECTORS = frozenset(
    {"rare_api_for_principal", "rare_api_for_city", "rare_api_for_country", "rare_error_code", "error_message_spike"}
)


@dataclass(frozen=True)
class EventScores:
    """Combined scores, aligned with the feature table's rows."""

    score: FloatArray
    surprise: FloatArray
    risk: FloatArray
    unusual: BoolArray
    gated: BoolArray
    detectors: dict[str, DetectorScores]

    def reasons(self, i: int) -> list[Reason]:
        """Every reason any detector gave for row ``i``, highest score first."""
        out = [r for s in self.detectors.values() for r in s.reasons[i]]
        return sorted(out, key=lambda r: (-r.score, r.detector, r.code))


def _noisy_or(parts: Sequence[FloatArray], n: int) -> FloatArray:
    keep = np.ones(n)
    for p in parts:
        keep *= 1.0 - np.clip(p, 0.0, 1.0)
    out: FloatArray = 1.0 - keep
    return out


def combine(features: pa.Table, scores: Sequence[DetectorScores], options: ScoringOptions) -> EventScores:
    """Event scores from detector scores (see the module docstring)."""
    n = features.num_rows
    what: list[FloatArray] = []
    context: list[FloatArray] = []
    for s in scores:
        if len(s) != n:
            raise ValueError(f"detector {s.detector} scored {len(s)} rows, expected {n}")
        part = np.where(s.fired, s.score * options.weights.get(s.detector, 1.0), 0.0)
        (what if s.detector in WHAT_DETECTORS else context).append(part)
    what_s = _noisy_or(what, n)
    ctx_s = _noisy_or(context, n)
    both = (what_s > 0) & (ctx_s > 0)
    surprise = np.where(both, 1.0 - (1.0 - what_s) * (1.0 - ctx_s), np.maximum(what_s, 0.5 * ctx_s))
    risk_col = features.column("api_risk") if "api_risk" in features.column_names else pa.nulls(n, pa.float64())
    risk = risk_col.to_numpy(zero_copy_only=False).astype(np.float64)
    risk = np.where(np.isnan(risk), options.default_risk, np.clip(risk, 0.0, 1.0))
    score = surprise * (0.35 + 0.65 * risk)
    gated = np.zeros(n, dtype=bool)
    for col in ("gated_account", "gated_principal"):
        if col in features.column_names:
            gated |= features.column(col).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    unusual = np.where(gated, risk >= options.gated_risk, score >= options.event_threshold)
    return EventScores(
        score=score,
        surprise=surprise,
        risk=risk,
        unusual=np.asarray(unusual, dtype=bool),
        gated=gated,
        detectors={s.detector: s for s in scores},
    )
