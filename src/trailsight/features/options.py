"""Options of the as-of features: the forget window and the enough-data gates (``[detect]``).

They live here because the feature table depends on them; the pipeline, the engines and the scoring
read the same frozen object.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from trailsight.config import Settings
from trailsight.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class FeatureOptions:
    """How much history the features look at and when there is enough of it.

    * ``forget_days`` — profiles only count the days ``[day - forget_days, day)`` before an
      event's day plus the same day up to the event (Splunk's 90-day forget window).
    * ``min_account_days`` — the account must have events on at least this many earlier days
      before its events are scored normally (Splunk's 7-day gate).
    * ``min_principal_days`` / ``min_principal_events`` — the per-principal minimum: fewer
      active days or fewer earlier events than this and the principal's events are *gated*.
    """

    forget_days: int = 90
    min_account_days: int = 7
    min_principal_days: int = 3
    min_principal_events: int = 20

    @classmethod
    def from_settings(cls, settings: Settings | None) -> FeatureOptions:
        """Read ``[detect]`` from ``settings``; unknown keys are left to the other readers."""
        if settings is None:
            return cls()
        section = settings.section("detect")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in section:
                value = section[f.name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"{settings.path}: [detect] {f.name} must be a non-negative integer")
                values[f.name] = value
        if values.get("forget_days", 1) < 1:
            raise ConfigError(f"{settings.path}: [detect] forget_days must be at least 1")
        return cls(**values)
