"""Accumulated risk: weak signals of one actor that add up over the window, against its own history.

Source: Elastic's entity risk scoring and Splunk's risk-based alerting (weak signals add up per
entity until they pass a threshold); here the threshold is what the actor's own history makes
likely rather than a fixed sum.

Algorithm, in plain words: a *weak signal* is a group of unusual events that stayed below the
alert level. An actor's weak signals in the window are ``n`` on ``d`` UTC days. Its usual rate
of harmless novelty ``λ`` (weak signals a day) comes from its earlier runs (table
``story_novelty``, :mod:`trailsight.store.lineage`), or else from the run itself (all actors'
weak signals per actor and day). Under that rate the window's expected count is ``μ = λ ×
days spanned``; the chance of ``n`` or more is Poisson's upper tail. The signals are raised
together when ``n >= min_signals``, ``d >= min_days`` and that chance is at most ``alpha``
shared among the actors the run tests (``alpha / actors``, Bonferroni's correction: with a
hundred actors, a per-actor chance of 1 % would raise one harmless actor a run).
Their evidence is ``1 − Π(1 − score)``, discounted by the chance: ``score = evidence × (1 −
p)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from trailsight.finding import Finding
from trailsight.stories.options import StoryOptions

__all__ = ["Accumulated", "accumulate", "poisson_tail"]


@dataclass(frozen=True, kw_only=True)
class Accumulated:
    """The accumulated risk of one actor's weak signals."""

    signals: int
    days: int
    expected: float
    p_value: float
    evidence: float
    score: float
    raised: bool
    explanation: str


def poisson_tail(n: int, mu: float) -> float:
    """P(N >= n) for N ~ Poisson(mu)."""
    if n <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    term = math.exp(-mu)
    below = term
    for k in range(1, n):
        term *= mu / k
        below += term
    return max(0.0, 1.0 - below)


def accumulate(weak: Sequence[Finding], options: StoryOptions, rate: float, tested: int = 1) -> Accumulated:
    """Whether ``weak`` (one actor's weak signals in the window) add up, at ``rate`` harmless ones a day.

    ``tested`` is how many actors the run tests: each may pass at ``alpha / tested`` only.
    """
    ordered = sorted(weak, key=lambda f: f.first_seen)
    n = len(ordered)
    day_set = {f.first_seen.astimezone(UTC).date() for f in ordered}
    span = max(1.0, (ordered[-1].last_seen - ordered[0].first_seen).total_seconds() / 86400.0) if ordered else 1.0
    expected = rate * span
    p = poisson_tail(n, expected)
    keep = 1.0
    for f in ordered:
        keep *= 1.0 - f.score
    evidence = 1.0 - keep
    raised = n >= options.min_signals and len(day_set) >= options.min_days and p <= options.alpha / max(1, tested)
    apis = list(dict.fromkeys(a.event_name for f in ordered for a in f.anomalous_apis))
    shown = ", ".join(apis[:6]) + (f" and {len(apis) - 6} more" if len(apis) > 6 else "")
    calls = sum(f.count for f in ordered)
    explanation = (
        f"{calls} unusual calls in {n} bursts on {len(day_set)} days, each alone below the alert level"
        + (f": {shown}; " if shown else "; ")
        + f"about {expected:.1f} such signals would be usual for this actor over that time "
        f"(chance of {n} or more: {p:.2g})."
    )
    return Accumulated(
        signals=n,
        days=len(day_set),
        expected=expected,
        p_value=p,
        evidence=evidence,
        score=round(evidence * (1.0 - p), 6),
        raised=raised,
        explanation=explanation,
    )
