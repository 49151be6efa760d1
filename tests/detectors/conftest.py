"""Shared fixture: the as-of features of the sample scenario (computed once per session)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pyarrow as pa
import pytest

from trailsight.features import build_feature_table
from trailsight.features.sample import scenario_events

START = datetime(2025, 1, 6, tzinfo=UTC)
TEST_DAY = START + timedelta(days=21)


@pytest.fixture(scope="session")
def scenario_features() -> pa.Table:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    expr = build_feature_table(ibis.memtable(scenario_events()), START, TEST_DAY + timedelta(days=1))
    return con.to_pyarrow(expr)
