"""trailsight: learn how every AWS principal usually behaves in CloudTrail; explain what it doesn't usually do.

The public API, importable from here (each is loaded when first used, so ``import trailsight``
stays light for the command line):

* :func:`detect` — score a time range of a store and return its findings
  (:mod:`trailsight.pipeline`), with :class:`RunStats`;
* :class:`Finding`, :class:`Reason`, :class:`UnusualEvent` — the domain types
  (:mod:`trailsight.finding`);
* :class:`Detector`, :class:`DetectorScores` — what a detector is (:mod:`trailsight.detectors.base`);
* :class:`FeatureEngine`, :class:`FeaturePlan`, :class:`OpenRange` — the engine protocol
  (:mod:`trailsight.engines.base`), with the engines :class:`LocalEngine` and :class:`SparkEngine`;
* :class:`Settings` — a loaded ``trailsight.toml`` (:mod:`trailsight.config`);
* :class:`TrailsightError`, :class:`ConfigError`, :class:`StoreError` — the errors (:mod:`trailsight.errors`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS: dict[str, str] = {
    "ConfigError": "trailsight.errors",
    "Detector": "trailsight.detectors.base",
    "DetectorScores": "trailsight.detectors.base",
    "FeatureEngine": "trailsight.engines.base",
    "FeaturePlan": "trailsight.engines.base",
    "Finding": "trailsight.finding",
    "LocalEngine": "trailsight.engines.local",
    "OpenRange": "trailsight.engines.base",
    "Reason": "trailsight.finding",
    "RunStats": "trailsight.pipeline",
    "Settings": "trailsight.config",
    "SparkEngine": "trailsight.engines.spark",
    "StoreError": "trailsight.errors",
    "TrailsightError": "trailsight.errors",
    "UnusualEvent": "trailsight.finding",
    "detect": "trailsight.pipeline",
}

if TYPE_CHECKING:
    from trailsight.config import Settings
    from trailsight.detectors.base import Detector, DetectorScores
    from trailsight.engines.base import FeatureEngine, FeaturePlan, OpenRange
    from trailsight.engines.local import LocalEngine
    from trailsight.engines.spark import SparkEngine
    from trailsight.errors import ConfigError, StoreError, TrailsightError
    from trailsight.finding import Finding, Reason, UnusualEvent
    from trailsight.pipeline import RunStats, detect


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trailsight' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ConfigError",
    "Detector",
    "DetectorScores",
    "FeatureEngine",
    "FeaturePlan",
    "Finding",
    "LocalEngine",
    "OpenRange",
    "Reason",
    "RunStats",
    "Settings",
    "SparkEngine",
    "StoreError",
    "TrailsightError",
    "UnusualEvent",
    "__version__",
    "detect",
]
