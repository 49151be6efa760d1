"""Options of attack stories (``[stories]`` in trailsight.toml)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from trailsight.config import Settings
from trailsight.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class StoryOptions:
    """How findings and weak signals are joined into stories (see docs/stories.md).

    * ``enabled`` — build stories at all.
    * ``window_days`` — members further apart than this (and lineage older than this) do not join.
    * ``network_links`` — join different principals seen on the same public source IP.
    * ``max_network_actors`` — an IP shared by more actors than this among the run's unusual
      activity (a proxy, a corporate NAT) links nobody.
    * ``further_share`` — how much each further raised member adds to a story's score, after
      the strongest (like further APIs in a finding).
    * ``min_signals`` / ``min_days`` — accumulated risk needs at least this many weak signals
      of one actor on at least this many UTC days.
    * ``alpha`` — accumulated risk is raised when so many weak signals are less likely than this
      (shared among the actors tested) under the actor's own rate of harmless novelty.
    """

    enabled: bool = True
    window_days: float = 14.0
    network_links: bool = True
    max_network_actors: int = 3
    further_share: float = 0.5
    min_signals: int = 3
    min_days: int = 2
    alpha: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings | None) -> StoryOptions:
        """Read ``[stories]`` from ``settings`` (a bad value is a ConfigError naming it)."""
        if settings is None:
            return cls()
        section = settings.section("stories")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in section.items():
            if name not in known:
                raise ConfigError(f"{settings.path}: [stories] {name}: unknown setting")
            default = getattr(cls(), name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"{settings.path}: [stories] {name} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{settings.path}: [stories] {name} must be a non-negative number")
            elif isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"{settings.path}: [stories] {name} must be a whole number")
            elif name == "alpha" and not 0 < value < 1:
                raise ConfigError(f"{settings.path}: [stories] alpha must be between 0 and 1")
            values[name] = value if isinstance(default, bool | int) else float(value)
        return cls(**values)
