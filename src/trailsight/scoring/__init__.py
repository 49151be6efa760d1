"""Scoring: detector scores → event scores (weighted by API risk) → finding score and confidence."""

from __future__ import annotations

from trailsight.scoring.combine import WHAT_DETECTORS, EventScores, combine
from trailsight.scoring.options import ScoringOptions

__all__ = ["WHAT_DETECTORS", "EventScores", "ScoringOptions", "combine"]
