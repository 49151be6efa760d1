"""Combine detector scores into one score per event, weighted by the API's risk.

Algorithm, in plain words: each detector that *fired* on an event contributes its score ``s``
times its weight ``w``; the contributions combine like independent pieces of evidence
(noisy-or: ``1 − Π(1 − w·s)``) within two kinds — novelty of *what* was done (the API-level
detectors: ``what``) and novelty of *where/how* it was done (network, agent, hour, volume:
``context``). The location-partitioned API detectors and the error detectors mostly restate
the principal-level novelty, so they weigh 0.5–0.6 by default, as does a volume spike. When
both kinds fired they combine fully; context alone counts half — unless two or more context
detectors fired (each at ``corroboration`` or more after weighting, 0.8), which counts fully:
a new network *and* an hour never worked is how a person's stolen credentials look even when
the APIs are the usual ones. Detectors marked ``people_only`` (working hours) count in
proportion to how much the principal behaves like a person (``1 − automation likelihood``). The result is scaled by the
API's risk factor from the catalog (``0.35 + 0.65 · risk``, :func:`~trailsight.scoring.policy.risk_factor`):
a new ``StopLogging`` weighs far
more than a new ``DescribeInstances``.

Gated events (too little account or principal history) keep their score for the record but
are only *unusual* when their API is dangerous (risk ≥ ``gated_risk``).

*Identity evidence* (a detector with ``identity = True``: a sign-in without the person's usual
MFA, root use in an account that rarely uses root) says the credential itself is in doubt, so
where it fires the event stands on its own: it counts as corroborated context, its risk is at
least ``identity_risk`` (0.8 — whoever holds the credential can call anything), and a short
principal history does not gate it (the account's still does).

The combiner takes any set of :class:`~trailsight.detectors.base.DetectorScores`, so a new
detector (a learned model, say) is combined like the seed ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from trailsight.detectors.base import BoolArray, DetectorScores, FloatArray
from trailsight.finding import Reason
from trailsight.scoring.options import ScoringOptions
from trailsight.scoring.policy import risk_factor

#: The built-in detectors that say *what* was done is unusual (``Detector.kind == "what"``);
#: any detector declaring ``kind = "what"`` is treated the same, every other one as context.
WHAT_DETECTORS = frozenset(
    {"rare_api_for_principal", "rare_api_for_city", "rare_api_for_country", "rare_error_code", "error_message_spike"}
)

#: Default weight of each detector in the combination (any other detector: 1).
DEFAULT_WEIGHTS: dict[str, float] = {
    "rare_api_for_principal": 1.0,
    "rare_api_for_city": 0.5,
    "rare_api_for_country": 0.5,
    "rare_error_code": 0.6,
    "error_message_spike": 0.6,
    "unusual_network": 1.0,
    "unusual_user_agent": 1.0,
    "off_hours": 1.0,
    "volume_spike": 0.5,
}


@dataclass(frozen=True)
class EventScores:
    """Combined scores, aligned with the feature table's rows."""

    score: FloatArray
    surprise: FloatArray
    what: FloatArray
    context: FloatArray
    risk: FloatArray
    unusual: BoolArray
    gated: BoolArray
    corroborated: BoolArray
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
    automation = (
        np.nan_to_num(features.column("auto_score").to_numpy(zero_copy_only=False).astype(np.float64))
        if "auto_score" in features.column_names
        else None
    )
    what: list[FloatArray] = []
    context: list[FloatArray] = []
    identity = np.zeros(n, dtype=bool)
    for s in scores:
        if len(s) != n:
            raise ValueError(f"detector {s.detector} scored {len(s)} rows, expected {n}")
        weight = options.weights.get(s.detector, DEFAULT_WEIGHTS.get(s.detector, 1.0))
        part = np.where(s.fired, s.score * weight, 0.0)
        if s.people_only and automation is not None:
            # Working hours mean nothing for a pipeline (Sophos scores automation roles apart).
            part = part * (1.0 - automation)
        (what if s.kind == "what" or s.detector in WHAT_DETECTORS else context).append(part)
        if s.identity:
            identity |= np.asarray(s.fired, dtype=bool)
    what_s = _noisy_or(what, n)
    ctx_s = _noisy_or(context, n)
    # Two or more independent context signals (a new network *and* an hour never worked, say)
    # corroborate each other: a person's credentials used by someone else, even for usual APIs.
    corroborated = np.sum([p >= options.corroboration for p in context], axis=0) >= 2 if context else np.zeros(n, bool)
    corroborated |= identity
    both = (what_s > 0) & (ctx_s > 0)
    alone = np.where(corroborated, ctx_s, 0.5 * ctx_s)
    surprise = np.where(both, 1.0 - (1.0 - what_s) * (1.0 - ctx_s), np.maximum(what_s, alone))
    risk_col = features.column("api_risk") if "api_risk" in features.column_names else pa.nulls(n, pa.float64())
    risk = risk_col.to_numpy(zero_copy_only=False).astype(np.float64)
    risk = np.where(np.isnan(risk), options.default_risk, np.clip(risk, 0.0, 1.0))
    risk = np.where(identity, np.maximum(risk, options.identity_risk), risk)
    score = surprise * risk_factor(risk)
    gated = np.zeros(n, dtype=bool)
    for col in ("gated_account", "gated_principal"):
        if col in features.column_names:
            flags = features.column(col).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
            # Identity evidence is judged against the account (root is rarely used by design).
            gated |= flags & ~identity if col == "gated_principal" else flags
    unusual = np.where(gated, risk >= options.gated_risk, score >= options.event_threshold)
    return EventScores(
        score=score,
        surprise=surprise,
        what=what_s,
        context=ctx_s,
        risk=risk,
        unusual=np.asarray(unusual, dtype=bool),
        gated=gated,
        corroborated=np.asarray(corroborated, dtype=bool),
        detectors={s.detector: s for s in scores},
    )
