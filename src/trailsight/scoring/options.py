"""Options of scoring and grouping (``[detect]`` in trailsight.toml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from trailsight.config import Settings
from trailsight.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ScoringOptions:
    """How detector scores become event scores, and events become findings.

    * ``event_threshold`` — an event is *unusual* when its combined score reaches this.
    * ``gap_minutes`` — unusual events of one principal closer than this form one finding.
    * ``gated_risk`` — a gated event (too little history) still raises a finding when its
      API's risk weight reaches this.
    * ``default_risk`` — risk weight of an API the catalog does not know.
    * ``identity_risk`` — the least risk weight of an event where identity evidence fired (a
      sign-in without the person's usual MFA, rare root use: see
      :mod:`trailsight.scoring.combine`).
    * ``corroboration`` — a context detector's weighted score at which it corroborates another
      context detector (two such make context alone count fully).
    * ``context_weight`` — how much of a finding's score depends on context corroboration
      (new network, agent, hour, volume) when its APIs are unusual.
    * ``min_score`` — findings scoring below this are not raised (the alert threshold); gated
      findings are raised regardless, marked ``gated``.
    * ``weights`` — per-detector weight in the combination (defaults in
      :data:`trailsight.scoring.combine.DEFAULT_WEIGHTS`, 1 for other detectors).
    """

    event_threshold: float = 0.3
    corroboration: float = 0.8
    context_weight: float = 0.6
    min_score: float = 0.5
    gap_minutes: float = 30.0
    gated_risk: float = 0.7
    default_risk: float = 0.3
    identity_risk: float = 0.8
    weights: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings | None) -> ScoringOptions:
        """Read ``[detect]`` (and ``[detect.weights]``) from ``settings``."""
        if settings is None:
            return cls()
        section = settings.section("detect")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "weights" or f.name not in section:
                continue
            value = section[f.name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{settings.path}: [detect] {f.name} must be a non-negative number")
            values[f.name] = float(value)
        weights = settings.section("detect.weights")
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{settings.path}: [detect.weights] {name} must be a non-negative number")
        values["weights"] = {str(k): float(v) for k, v in weights.items()}
        return cls(**values)
