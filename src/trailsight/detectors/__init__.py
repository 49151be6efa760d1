"""Detectors: each reads the as-of feature table and says, per event, how unusual it is.

See :mod:`trailsight.detectors.base` for the contract and :mod:`trailsight.detectors.registry`
for the names. Every built-in detector reproduces one seed system's rule.
"""

from __future__ import annotations

from trailsight.detectors.base import Detector, DetectorScores
from trailsight.detectors.registry import BUILTIN, available, create, get

__all__ = ["BUILTIN", "Detector", "DetectorScores", "available", "create", "get"]
