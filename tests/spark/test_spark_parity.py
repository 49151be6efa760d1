"""Spark and DuckDB give the same features and the same findings on the same store.

The store holds the real invictus-ir Stratus detonation (2023-07-10) after eight simulated
days of a small organisation (2023-07-02 .. 07-09, with its own attacks). Spark runs in
local mode (``local[2]``, no UI, 1 GB driver). One Spark feature query serves both checks:
its table is compared column by column with DuckDB's, then fed to the same detectors,
scoring and grouping as ``trailsight.pipeline.detect``, whose findings it must reproduce.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from spark_env import build_store, require_spark

from trailsight import pipeline
from trailsight.detectors import registry
from trailsight.engines import spark
from trailsight.engines.base import needed_columns
from trailsight.features.asof import build_feature_table
from trailsight.features.options import FeatureOptions
from trailsight.features.source import connect, open_events, quiet_ibis
from trailsight.store.layout import StoreLayout

require_spark()  # skips here without pyspark or java, fails where TRAILSIGHT_REQUIRE_SPARK=1 (CI)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SINCE = datetime(2023, 7, 9, tzinfo=UTC)
UNTIL = datetime(2023, 7, 11, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> StoreLayout:
    layout = build_store(tmp_path_factory.mktemp("parity"), sim_days=8)
    with quiet_ibis():
        con = connect()
        events = open_events(con, layout, datetime(2023, 7, 2, tzinfo=UTC), UNTIL, 0)
        assert events.count().to_pyarrow().as_py() > 10_000
    return layout


@pytest.fixture(scope="module")
def spark_con() -> Iterator[Any]:
    con = spark.connect("local[2]")
    yield con
    spark.stop(con)


@pytest.fixture(scope="module")
def spark_features(store: StoreLayout, spark_con: Any) -> pa.Table:
    return spark.feature_table(spark_con, store, SINCE, UNTIL)


@pytest.fixture(scope="module")
def duckdb_features(store: StoreLayout) -> pa.Table:
    opts = FeatureOptions()
    with quiet_ibis():
        con = connect()
        events = open_events(con, store, SINCE, UNTIL, opts.forget_days)
        table = build_feature_table(events, SINCE, UNTIL, opts).to_pyarrow()
    return table.sort_by([("event_time", "ascending"), ("event_id", "ascending")])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def test_feature_values_match(spark_features: pa.Table, duckdb_features: pa.Table) -> None:
    assert spark_features.num_rows == duckdb_features.num_rows > 3000
    assert spark_features.column_names == duckdb_features.column_names
    assert spark_features["event_id"].to_pylist() == duckdb_features["event_id"].to_pylist()
    mismatched: dict[str, int] = {}
    for name in duckdb_features.column_names:
        d_col, s_col = duckdb_features[name], spark_features[name]
        assert d_col.type == s_col.type, name
        diffs = sum(1 for a, b in zip(d_col.to_pylist(), s_col.to_pylist(), strict=True) if not _same(a, b))
        if diffs:
            mismatched[name] = diffs
    assert mismatched == {}


def test_findings_match(store: StoreLayout, spark_features: pa.Table) -> None:
    with quiet_ibis():
        expected = pipeline.detect(store, SINCE, UNTIL, None, save=False)
    columns = needed_columns(registry.create(None, None))
    got = spark.detect(store, SINCE, UNTIL, None, save=False, features=spark_features.select(columns))
    assert len(expected) >= 3
    assert [f.to_dict() for f in got] == [f.to_dict() for f in expected]
