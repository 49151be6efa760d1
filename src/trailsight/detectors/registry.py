"""Detectors by name: the built-in ones plus third-party ones from an entry-point group.

Built-ins are listed explicitly in :data:`BUILTIN`; packages add detectors through the
``trailsight.detectors`` entry-point group (``name = "module:Class"``). A name registered twice
is rejected, an unknown name is a :class:`DetectorError`, and thresholds and other parameters
come from ``[detectors.<name>]`` in ``trailsight.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points

from trailsight.config import Settings
from trailsight.detectors.automation_misuse import AutomationMisuseDetector
from trailsight.detectors.base import Detector
from trailsight.detectors.behaviour_model import BehaviourModelDetector
from trailsight.detectors.error_message_spike import ErrorMessageSpikeDetector
from trailsight.detectors.geo_velocity import GeoVelocityDetector
from trailsight.detectors.off_hours import OffHoursDetector
from trailsight.detectors.rare_api_for_location import RareApiForCityDetector, RareApiForCountryDetector
from trailsight.detectors.rare_api_for_principal import RareApiForPrincipalDetector
from trailsight.detectors.rare_error_code import RareErrorCodeDetector
from trailsight.detectors.signin import LongTermKeyNetworkDetector, SigninDetector
from trailsight.detectors.unusual_network import UnusualNetworkDetector
from trailsight.detectors.unusual_user_agent import UnusualUserAgentDetector
from trailsight.detectors.volume_spike import VolumeSpikeDetector
from trailsight.errors import DetectorError

ENTRY_POINT_GROUP = "trailsight.detectors"

#: The built-in detectors, by name.
BUILTIN: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        RareApiForPrincipalDetector,
        RareApiForCityDetector,
        RareApiForCountryDetector,
        RareErrorCodeDetector,
        ErrorMessageSpikeDetector,
        UnusualNetworkDetector,
        UnusualUserAgentDetector,
        OffHoursDetector,
        VolumeSpikeDetector,
        BehaviourModelDetector,
        AutomationMisuseDetector,
        GeoVelocityDetector,
        SigninDetector,
        LongTermKeyNetworkDetector,
    )
}


#: The seed detectors: the rules of Elastic, Splunk, Sophos and GuardDuty, reproduced.
SEEDS: tuple[str, ...] = (
    "rare_api_for_principal",
    "rare_api_for_city",
    "rare_api_for_country",
    "rare_error_code",
    "error_message_spike",
    "unusual_network",
    "unusual_user_agent",
    "off_hours",
    "volume_spike",
)


def available(include_plugins: bool = True) -> dict[str, type[Detector]]:
    """Every detector class by name: built-ins, then entry points (duplicates rejected)."""
    found: dict[str, type[Detector]] = dict(BUILTIN)
    if not include_plugins:
        return found
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            raise DetectorError(f"entry point {ENTRY_POINT_GROUP}:{ep.name} failed to load: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise DetectorError(f"entry point {ENTRY_POINT_GROUP}:{ep.name} is not a Detector subclass")
        register(found, cls, origin=f"entry point {ep.name}")
    return found


def register(registry: dict[str, type[Detector]], cls: type[Detector], origin: str = "") -> None:
    """Add ``cls`` to ``registry`` under its ``name``; a name already present is rejected."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise DetectorError(f"detector class {cls.__qualname__} has no name")
    if name in registry and registry[name] is not cls:
        where = f" ({origin})" if origin else ""
        raise DetectorError(f"detector name {name!r} is registered twice{where}")
    registry[name] = cls


def get(name: str, registry: Mapping[str, type[Detector]] | None = None) -> type[Detector]:
    """The detector class called ``name``."""
    reg = registry if registry is not None else available()
    try:
        return reg[name]
    except KeyError:
        known = ", ".join(sorted(reg))
        raise DetectorError(f"unknown detector {name!r} (known: {known})") from None


def create(
    names: Iterable[str] | None = None,
    settings: Settings | None = None,
    registry: Mapping[str, type[Detector]] | None = None,
) -> list[Detector]:
    """Instantiate detectors (all when ``names`` is None) with ``[detectors.<name>]`` parameters."""
    reg = registry if registry is not None else available()
    chosen = list(reg) if names is None else list(dict.fromkeys(names))
    out: list[Detector] = []
    for name in chosen:
        cls = get(name, reg)
        params = dict(settings.section(f"detectors.{name}")) if settings is not None else {}
        params.pop("enabled", None) if names is not None else None
        if names is None and params.pop("enabled", cls.default_enabled) is False:
            continue
        try:
            out.append(cls(**params))
        except DetectorError as exc:
            where = settings.path if settings is not None and settings.path else "settings"
            raise DetectorError(f"{where}: [detectors.{name}]: {exc}") from None
    return out
