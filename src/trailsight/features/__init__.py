"""As-of behavioural features: for each event, what its principal, actor and account did before it.

The public entry point is :func:`build_features`; the expressions live in
:mod:`trailsight.features.asof` and read only portable Ibis, so the DuckDB backend used by
default and a Spark backend run the same thing.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import ibis.expr.types as ir

from trailsight.config import Settings
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
    "build_features",
    "build_profiles",
    "feature_columns",
    "prepare",
]


def build_features(
    con: ibis.BaseBackend,
    since: datetime,
    until: datetime,
    settings: Settings | None = None,
    *,
    events: ir.Table | None = None,
) -> ir.Table:
    """Feature table for the events in ``[since, until)`` of table ``events`` on backend ``con``.

    ``events`` defaults to ``con.table("events")``; it must reach ``forget_days`` before ``since``.
    """
    table = events if events is not None else con.table("events")
    return build_feature_table(table, since, until, FeatureOptions.from_settings(settings))
