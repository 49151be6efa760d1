"""Shared fixture: the as-of features of the sample scenario (computed once per session)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pyarrow as pa
import pytest

from sample_events import scenario_events
from trailsight.features import build_feature_table
from trailsight.features.asof import prepare
from trailsight.features.behaviour import BehaviourContext, add_context, context_aggregates

START = datetime(2025, 1, 6, tzinfo=UTC)
TEST_DAY = START + timedelta(days=21)


@pytest.fixture(scope="session")
def scenario_features() -> pa.Table:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    events = ibis.memtable(scenario_events())
    expr = build_feature_table(events, START, TEST_DAY + timedelta(days=1))
    aggs = {name: con.to_pyarrow(e) for name, e in context_aggregates(prepare(events)).items()}
    context = BehaviourContext(aggs["pday"], aggs["papi"], forget_days=90)
    return add_context(con.to_pyarrow(expr), context)
