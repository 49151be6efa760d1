"""As-of behavioural features: for each event, what its principal, actor and account did before it.

The expressions live in :mod:`trailsight.features.asof` (:func:`build_feature_table`) and read
only portable Ibis, so the local engine (DuckDB, :mod:`trailsight.engines.local`) and the Spark
engine (:mod:`trailsight.engines.spark`) run the same thing. The local engine computes them a
chunk at a time from daily profiles (:mod:`~trailsight.features.daily`,
:mod:`~trailsight.features.chunk`); the behaviour context is :mod:`~trailsight.features.behaviour`.
"""

from __future__ import annotations

from trailsight.features.asof import (
    FREQUENCY_CLASSES,
    PAIR_BY_NAME,
    PAIRS,
    Pair,
    build_feature_table,
    build_profiles,
    feature_columns,
    prepare,
)
from trailsight.features.options import FeatureOptions

__all__ = [
    "FREQUENCY_CLASSES",
    "PAIRS",
    "PAIR_BY_NAME",
    "FeatureOptions",
    "Pair",
    "build_feature_table",
    "build_profiles",
    "feature_columns",
    "prepare",
]
