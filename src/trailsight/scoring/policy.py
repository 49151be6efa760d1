"""Scoring policy: how surprise becomes a score, a finding score, a severity and a confidence.

Every number that ranks or labels what trailsight raises is here, once:

* the **API risk factor** — an API's risk (0..1, from the catalog) scales a surprise between
  :data:`RISK_FLOOR` for harmless reads and 1 for the worst (:func:`risk_factor`); the event
  score (:mod:`trailsight.scoring.combine`) and the finding score both use it;
* the **finding score** of a group of unusual events (:func:`finding_score`), in plain words:
  *what* — the distinct unusual APIs of the group, each at its best API-novelty score times its
  risk factor, combine like independent evidence where the strongest counts fully and each
  further one (up to four) counts half; *context* — the strongest new network / agent / hour /
  volume signal among the events. Unusual APIs with no unusual context keep ``1 −
  context_weight`` of their weight, with full context all of it; context without unusual APIs
  counts a third of the top API risk — or, where two or more context signals corroborate each
  other on one event, that event's context score weighted by its API risk factor. *What* and
  *context* are combined within one actor: a group of a shared role (an SSO permission set)
  holding several people's calls scores as its strongest person's calls alone, so one person's
  new API is never weighted by another person's new network. A group whose
  events are all *gated* (too little history) scores :data:`GATED_SHARE` of its top API risk;
* the **severity** on GuardDuty's scale from the tactic and the score (:func:`severity_for`,
  :func:`severity_label`), raised to what the finding's calls did (:func:`finding_severity`,
  the severity policy below);
* the **confidence** band (:func:`confidence_for`, :data:`CONFIDENCE_BANDS`).

**The severity policy.** Confidence says how unusual the behaviour is for this actor (the
calibrated finding score and its bands); severity says how bad the effect would be if it is an
attack. Effects (:mod:`trailsight.enrich.effects`) bear on severity, and only here:

* each succeeded effect has its kind's least severity (``severity`` in
  ``enrich/catalog/effect_kinds.csv``): an admin grant, access opened to outsiders or to
  everyone, logging blinded, a credential made for someone else — High (7.0); a broad but not
  admin grant, a web port opened to the world — Medium (4.0). A failed attempt did nothing: it
  counts one band lower (:data:`FAILED_LABEL`);
* each further distinct High kind adds :data:`EFFECT_STEP` (at most two of them);
* a principal with too little history to judge (gated, or under :data:`NEW_PRINCIPAL_DAYS`
  days) doing a High thing adds :data:`EFFECT_STEP` more: new is worse, not better;
* the finding keeps the larger of this and its behaviour severity, capped at :data:`TOP_SEVERITY`.
  Nothing here lowers a severity; a read has no effect and keeps its behaviour severity.

The score, the ranking and the confidence are not changed by effects: legitimate changes of the
same kinds (break-glass grants, vendor trusts, partner shares) happen every week, and whether
this actor, from this network, does such things is what the score weighs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from trailsight.finding import UnusualEvent

#: The risk factor of an API of risk 0 (a harmless read); risk 1 gives 1.
RISK_FLOOR = 0.35
#: How much the risk factor grows from risk 0 to risk 1 (``1 − RISK_FLOOR``).
RISK_SPAN = 0.65
#: The share of the top API risk a finding of gated events only scores.
GATED_SHARE = 0.5
#: The share of the top API risk uncorroborated context alone (no unusual API) scores.
CONTEXT_ALONE_SHARE = 0.35
#: How many further unusual APIs, after the strongest, add to a finding's *what*.
FURTHER_APIS = 4

#: How much each tactic weighs in severity (1 = the top of the High band at full score).
TACTIC_WEIGHT: dict[str | None, float] = {
    "Impact": 1.0,
    "Exfiltration": 1.0,
    "DefenseEvasion": 0.95,
    "CredentialAccess": 0.9,
    "PrivilegeEscalation": 0.9,
    "Persistence": 0.85,
    "InitialAccess": 0.75,
    "LateralMovement": 0.75,
    "Execution": 0.7,
    "Collection": 0.65,
    "Discovery": 0.5,
    None: 0.4,
}

#: Finding scores at which confidence becomes High and Medium (calibrated on the dev benchmark:
#: docs/model.md gives the daily volume and precision of each band).
CONFIDENCE_BANDS: tuple[float, float] = (0.75, 0.6)

_Risk = TypeVar("_Risk", float, "npt.NDArray[np.float64]")


def risk_factor(risk: _Risk) -> _Risk:
    """How much an API's risk (0..1; a float or a numpy array) scales a surprise: 0.35 to 1."""
    out: _Risk = RISK_FLOOR + RISK_SPAN * risk
    return out


def finding_score(events: Sequence[UnusualEvent], context_weight: float = 0.6) -> float:
    """Score of a group of unusual events that are not all gated: its strongest actor's (see the module docstring)."""
    by_actor: dict[str, list[UnusualEvent]] = {}
    for e in events:
        by_actor.setdefault(str(e.row.get("actor") or e.principal), []).append(e)
    return max(_actor_score(group, context_weight) for group in by_actor.values())


def _actor_score(events: Sequence[UnusualEvent], context_weight: float) -> float:
    """Score of one actor's unusual events: *what* weighted by *context*, or context alone."""
    best: dict[str, float] = {}
    for e in events:
        api = str(e.row["api"])
        value = e.what * risk_factor(e.risk)
        best[api] = max(best.get(api, 0.0), value)
    ranked = sorted(best.values(), reverse=True)
    keep = 1.0 - ranked[0]
    for s in ranked[1 : 1 + FURTHER_APIS]:
        keep *= 1.0 - 0.5 * s
    what = 1.0 - keep
    context = max(e.context for e in events)
    top_risk = max(e.risk for e in events)
    # Corroborated context (two or more context signals on one event) stands on its own,
    # weighted by that event's API risk like an unusual API would be.
    corroborated = max((e.context * risk_factor(e.risk) for e in events if e.corroborated), default=0.0)
    alone = max(context * CONTEXT_ALONE_SHARE * top_risk, corroborated)
    score = what * ((1.0 - context_weight) + context_weight * context) + (1.0 - what) * alone
    return round(min(1.0, max(0.0, score)), 6)


def gated_score(events: Sequence[UnusualEvent]) -> float:
    """Score of a group whose events are all gated: a share of its top API risk."""
    return round(GATED_SHARE * max(e.risk for e in events), 6)


def severity_for(tactic: str | None, score: float) -> float:
    """Severity on GuardDuty's scale (Low 1-3.9, Medium 4-6.9, High 7-8.9) from tactic and score (0..1)."""
    weight = TACTIC_WEIGHT.get(tactic, TACTIC_WEIGHT[None])
    value = 1.0 + 7.9 * max(0.0, min(1.0, score)) * weight
    return round(min(8.9, value), 1)


def severity_label(severity: float) -> str:
    """Low, Medium or High for a GuardDuty severity number."""
    if severity >= 7.0:
        return "High"
    if severity >= 4.0:
        return "Medium"
    return "Low"


#: Severity numbers (GuardDuty's scale) of the least-severity labels of effect kinds.
EFFECT_FLOORS: dict[str, float] = {"High": 7.0, "Medium": 4.0, "Low": 1.0}
#: What a failed attempt counts as, by the label of the succeeded effect.
FAILED_LABEL: dict[str, str] = {"High": "Medium", "Medium": "Low", "Low": "Low"}
#: Added for each distinct High effect kind after the first (two at most), and for a new principal.
EFFECT_STEP = 0.5
#: Days of history under which a principal is new to the severity policy.
NEW_PRINCIPAL_DAYS = 3.0
#: The top of GuardDuty's High band.
TOP_SEVERITY = 8.9


@dataclass(frozen=True, kw_only=True)
class EffectSeverity:
    """One effect as the severity policy sees it: its kind's least severity and whether it happened."""

    kind: str
    severity: str  # Low | Medium | High (the kind's, before a failed attempt lowers it)
    succeeded: bool


def effect_floor(effects: Iterable[EffectSeverity], *, new_principal: bool) -> float:
    """The least severity (GuardDuty number, 0 when none) that these effects give a finding."""
    labels: dict[str, str] = {}
    for e in effects:
        label = e.severity if e.succeeded else FAILED_LABEL.get(e.severity, "Low")
        if EFFECT_FLOORS.get(label, 0.0) > EFFECT_FLOORS.get(labels.get(e.kind, ""), 0.0):
            labels[e.kind] = label
    if not labels:
        return 0.0
    value = max(EFFECT_FLOORS.get(label, 0.0) for label in labels.values())
    highs = sum(1 for label in labels.values() if label == "High")
    if highs:
        value += EFFECT_STEP * min(2, highs - 1) + (EFFECT_STEP if new_principal else 0.0)
    return round(min(TOP_SEVERITY, value), 1)


def finding_severity(behaviour: float, effects: Iterable[EffectSeverity], *, history_days: float, gated: bool) -> float:
    """A finding's severity: its behaviour severity raised to its effects' floor (the severity policy)."""
    floor = effect_floor(effects, new_principal=gated or history_days < NEW_PRINCIPAL_DAYS)
    return round(min(TOP_SEVERITY, max(behaviour, floor)), 1)


def confidence_for(
    history_days: float, unusual_attributes: int, detectors: int, gated: bool, score: float | None = None
) -> str:
    """Low / Medium / High: how sure we are that this is unusual.

    With the finding's ``score``, the bands of :data:`CONFIDENCE_BANDS` decide (so "raise only
    High" gives a predictable daily volume); without it, history length and corroboration do.
    Gated findings and principals with under three days of history are always Low (the root
    user's history is its account's: :func:`~trailsight.findings.group.build_finding`).
    """
    if gated or history_days < 3:
        return "Low"
    if score is not None:
        high, medium = CONFIDENCE_BANDS
        return "High" if score >= high else "Medium" if score >= medium else "Low"
    corroboration = unusual_attributes + max(0, detectors - 1)
    if history_days >= 14 and corroboration >= 2:
        return "High"
    if history_days >= 7 or corroboration >= 2:
        return "Medium"
    return "Low"


__all__ = [
    "CONFIDENCE_BANDS",
    "EFFECT_FLOORS",
    "EFFECT_STEP",
    "FAILED_LABEL",
    "NEW_PRINCIPAL_DAYS",
    "RISK_FLOOR",
    "RISK_SPAN",
    "TACTIC_WEIGHT",
    "TOP_SEVERITY",
    "EffectSeverity",
    "confidence_for",
    "effect_floor",
    "finding_score",
    "finding_severity",
    "gated_score",
    "risk_factor",
    "severity_for",
    "severity_label",
]
