"""Run the as-of feature expressions on Apache Spark through Ibis' PySpark backend.

The feature engine (:mod:`trailsight.features`) is written once in portable Ibis; this
module supplies the other engine. :func:`connect` returns an Ibis PySpark backend on a
Spark session (local mode by default, or whatever ``spark-submit`` / the cluster
configured), and :func:`open_events` registers the events a range needs as the table
``events`` — from the store's Parquet lake (or Parquet ``paths`` anywhere Spark reads), or
from a DataFrame of normalised events: raw CloudTrail JSON (local files and folders, or
``s3://bucket/AWSLogs/...`` read with boto3) that
:func:`trailsight.engines.spark_cloudtrail.read_cloudtrail` parses, normalises and enriches
on the executors with trailsight's own ingest code — not re-written in Spark SQL, so it
cannot drift from ``trailsight ingest``. :func:`detect` takes that DataFrame as ``events=``.

Spark is an optional extra (``pip install trailsight[spark]``); :func:`session` and
:func:`connect` raise a :class:`~trailsight.errors.ConfigError` that says so without it.

Session settings that matter for trailsight:

* ``spark.sql.session.timeZone=UTC`` — event times are UTC instants; day and hour
  numbers must not shift with the JVM's zone.
* ``spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS`` and
  ``spark.sql.parquet.int96RebaseModeInRead=CORRECTED`` — read the lake's microsecond
  timestamps exactly.
* ``spark.sql.ansi.enabled=false`` — Spark 4 turns ANSI mode on by default; the feature
  expressions divide counts and cast freely, as DuckDB does.

A local session's Python workers run the driver's interpreter (``sys.executable``) unless
``$PYSPARK_PYTHON`` says otherwise: the raw CloudTrail reader runs trailsight code there.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from trailsight.config import Settings
from trailsight.errors import ConfigError, StoreError
from trailsight.findings.model import Finding
from trailsight.schema import EVENT_COLUMNS, EVENT_SCHEMA
from trailsight.store.layout import StoreLayout

#: Settings applied to every session this module creates (callers may override any of them).
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

#: Extra settings for a local session (tests, one machine): no UI, loopback only, few partitions.
#: The feature query is wide (about 90 window functions and 50 joins) and a small store's
#: events fit one partition, so the plan runs without shuffles, interpreted rather than
#: code-generated, on a JVM that compiles with C1 only: for a store of a few thousand events
#: this cuts the first run from minutes to well under one (compiling the generated code was
#: the cost, not the data). Override any of these with ``conf=``.
LOCAL_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "1g",
    "spark.buffer.pageSize": "1m",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def _require_pyspark() -> Any:
    try:
        import pyspark.sql
    except ModuleNotFoundError:
        raise ConfigError(
            "--engine spark: PySpark is not installed; run `pip install trailsight[spark]` (needs Java 17)"
        ) from None
    return pyspark.sql


def session(
    master: str | None = None,
    *,
    app_name: str = "trailsight",
    conf: Mapping[str, str] | None = None,
) -> Any:
    """Return a SparkSession (the active one under ``spark-submit``, else a new one on ``master``).

    ``master`` defaults to ``$TRAILSIGHT_SPARK_MASTER`` or ``local[2]``; for a ``local``
    master :data:`LOCAL_CONF` is applied as well.
    """
    sql = _require_pyspark()
    active = sql.SparkSession.getActiveSession()
    if active is not None and master is None:
        for key, value in {**BASE_CONF, **(conf or {})}.items():
            if not key.startswith(("spark.driver.", "spark.ui.", "spark.default.")):
                active.conf.set(key, value)
        return active
    chosen = master or os.environ.get("TRAILSIGHT_SPARK_MASTER", "local[2]")
    settings = dict(BASE_CONF)
    if chosen.startswith("local"):
        settings.update(LOCAL_CONF)
    settings.update(conf or {})
    builder = sql.SparkSession.builder.master(chosen).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if chosen.startswith("local") and not os.environ.get("PYSPARK_PYTHON"):
        # Local Python workers run trailsight's own code (raw CloudTrail): use the driver's
        # interpreter, which has it, not whatever `python3` is first on PATH.
        spark.sparkContext.pythonExec = sys.executable
    return spark


def connect(
    master: str | None = None,
    *,
    spark_session: Any = None,
    conf: Mapping[str, str] | None = None,
) -> Any:
    """Return an Ibis PySpark backend that :func:`trailsight.features.build_features` can use."""
    _require_pyspark()
    import ibis

    spark = spark_session if spark_session is not None else session(master, conf=conf)
    return ibis.pyspark.connect(spark)


def spark_session(con: Any) -> Any:
    """The SparkSession behind a backend from :func:`connect`."""
    return con._session


def lake_paths(layout: StoreLayout, since: datetime, until: datetime, forget_days: int) -> list[str]:
    """The lake files a feature range needs: ``forget_days`` before ``since`` up to ``until``."""
    from trailsight.features.source import event_days, lake_files_between

    if not layout.lake.is_dir():
        raise StoreError(f"{layout.root}: not a trailsight store (no lake/ folder); run `trailsight ingest` first")
    first, last = event_days(since, until, forget_days)
    files = lake_files_between(layout, first, last)
    if not files:
        raise StoreError(f"{layout.lake}: no events between {first} and {last}")
    return [str(p.resolve()) for p in files]


def open_events(
    con: Any,
    layout: StoreLayout,
    since: datetime,
    until: datetime,
    forget_days: int,
    *,
    paths: Sequence[str] | None = None,
    single_partition: bool | None = None,
    events: Any = None,
) -> Any:
    """Register the lake's events for the range as the Spark view (and Ibis table) ``events``.

    ``paths`` replaces the store's file list (e.g. ``s3a://bucket/lake/account_id=*/event_date=*/``).
    ``events`` (a DataFrame of normalised events, e.g. :func:`trailsight.engines.spark_cloudtrail.read_cloudtrail`'s)
    replaces the lake altogether; the range's days are taken from it, as they would be from the lake.
    ``single_partition`` (default: on for a local master) keeps the events in one cached
    partition: every window and join then runs without a shuffle, which is what a small
    store on one machine wants; a cluster should leave it off.
    """
    spark = spark_session(con)
    if events is not None:
        frame = events_between(events, since, until, forget_days)
    else:
        files = list(paths) if paths is not None else lake_paths(layout, since, until, forget_days)
        frame = spark.read.schema(spark_event_schema()).parquet(*files).select(*EVENT_COLUMNS)
    if single_partition is None:
        single_partition = str(spark.sparkContext.master).startswith("local")
    if single_partition:
        frame = frame.coalesce(1)
    frame.createOrReplaceTempView("_ts_events_src")
    spark.catalog.dropTempView("events")  # also drops the cached data of an earlier range
    if single_partition:
        spark.sql("CACHE TABLE events AS SELECT * FROM _ts_events_src")
    else:
        spark.sql("CREATE OR REPLACE TEMPORARY VIEW events AS SELECT * FROM _ts_events_src")
    return con.table("events")


def events_between(events: Any, since: datetime, until: datetime, forget_days: int) -> Any:
    """The rows of a normalised-events DataFrame on the days a range reads (as from the lake).

    Raises :class:`~trailsight.errors.StoreError` when there are none.
    """
    from pyspark.sql import functions as F

    from trailsight.features.source import event_days

    first, last = event_days(since, until, forget_days)
    frame = events.where(F.col("event_date").between(F.lit(first), F.lit(last))).select(*EVENT_COLUMNS)
    if frame.isEmpty():
        raise StoreError(f"CloudTrail: no events between {first} and {last}")
    return frame


def spark_event_schema() -> Any:
    """:data:`trailsight.schema.EVENT_SCHEMA` as a Spark ``StructType``."""
    types = _require_pyspark().types
    mapping = {
        "string": types.StringType(),
        "bool": types.BooleanType(),
        "int64": types.LongType(),
        "double": types.DoubleType(),
        "date32[day]": types.DateType(),
        "timestamp[us, tz=UTC]": types.TimestampType(),
    }
    fields = []
    for column in EVENT_SCHEMA:
        key = str(column.type)
        if key not in mapping:  # pragma: no cover - guards a schema change
            raise StoreError(f"schema column {column.name}: no Spark type for {key}")
        fields.append(types.StructField(column.name, mapping[key], True))
    return types.StructType(fields)


def to_utc_arrow(table: pa.Table) -> pa.Table:
    """Mark the naive timestamps Spark returns as UTC (they are UTC: the session zone is UTC)."""
    columns = []
    for column, fld in zip(table.columns, table.schema, strict=True):
        if pa.types.is_timestamp(fld.type) and fld.type.tz is None:
            column = column.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def feature_table(
    con: Any,
    layout: StoreLayout,
    since: datetime,
    until: datetime,
    settings: Settings | None = None,
    *,
    columns: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    events: Any = None,
) -> pa.Table:
    """The as-of feature table of ``[since, until)`` computed on Spark, as Arrow, by time then event id.

    The same :func:`trailsight.features.asof.build_feature_table` expression the DuckDB path
    runs; only the engine differs. ``paths`` / ``events`` as for :func:`open_events`.
    """
    from trailsight.features.asof import build_feature_table
    from trailsight.features.options import FeatureOptions

    opts = FeatureOptions.from_settings(settings)
    table = open_events(con, layout, since, until, opts.forget_days, paths=paths, events=events)
    expr = build_feature_table(table, since, until, opts)
    if columns is not None:
        expr = expr.select(*columns)
    frame = spark_session(con).sql(str(con.compile(expr)))
    # Spark's own types (int32 row numbers, naive timestamps) → the expression's declared schema.
    table = to_utc_arrow(frame.toArrow().cast(expr.schema().to_pyarrow()))
    return table.sort_by([("event_time", "ascending"), ("event_id", "ascending")])


def behaviour_context(
    con: Any,
    layout: StoreLayout,
    since: datetime,
    until: datetime,
    opts: Any,
    settings: Settings | None = None,
    *,
    paths: Sequence[str] | None = None,
    events: Any = None,
) -> Any:
    """The peer / automation context (:mod:`trailsight.features.behaviour`) aggregated on Spark."""
    from trailsight.features.asof import history_window, prepare
    from trailsight.features.behaviour import BehaviourContext, ContextOptions, context_aggregates

    raw = open_events(con, layout, since, until, opts.forget_days, paths=paths, events=events)
    history = history_window(prepare(raw), since, until, opts.forget_days)
    spark = spark_session(con)
    aggs = {
        # Spark's own Arrow export (as for the feature table), cast to the expression's schema.
        name: spark.sql(str(con.compile(expr))).toArrow().cast(expr.schema().to_pyarrow())
        for name, expr in context_aggregates(history).items()
    }
    return BehaviourContext(
        to_utc_arrow(aggs["pday"]), to_utc_arrow(aggs["papi"]), opts.forget_days, ContextOptions.from_settings(settings)
    )


def detect(
    store: Path | str | StoreLayout,
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None = None,
    detectors: Sequence[str] | None = None,
    *,
    save: bool = True,
    describe: bool = True,
    min_score: float | None = None,
    stats: Any = None,
    progress: Callable[[str], None] | None = None,
    con: Any = None,
    paths: Sequence[str] | None = None,
    features: pa.Table | None = None,
    events: Any = None,
) -> list[Finding]:
    """:func:`trailsight.runner.detect` with the features computed on Spark.

    Same arguments and result; ``con`` is a backend from :func:`connect` (default: a new
    one on ``$TRAILSIGHT_SPARK_MASTER`` or ``local[2]``). The feature table of the range is
    collected to the driver for the detectors, so give a cluster ranges of a day or so at a
    time (:mod:`trailsight.spark_job` does). ``features`` (a :func:`feature_table` result with
    at least the detectors' columns) skips the Spark step, for a caller that already has it.

    ``events`` (a DataFrame of normalised events: raw CloudTrail read by
    :func:`trailsight.engines.spark_cloudtrail.read_cloudtrail`) replaces the store's lake for
    the features, the context and the explanations (those events of the findings' accounts are
    collected to the driver for :mod:`trailsight.findings.describe`); the store folder still
    receives the findings and its feedback still suppresses them. Without a range, the last UTC
    day of ``events`` is scored.
    """
    from trailsight import runner
    from trailsight.detectors import registry
    from trailsight.features.options import FeatureOptions
    from trailsight.features.source import quiet_ibis
    from trailsight.findings.group import group_findings
    from trailsight.scoring.options import ScoringOptions

    started = time.perf_counter()
    started_at = datetime.now(UTC)
    layout = store if isinstance(store, StoreLayout) else StoreLayout(Path(store))
    if since is None or until is None:
        d_since, d_until = runner.default_range(layout) if events is None else last_day(events)
        since = since if since is not None else d_since
        until = until if until is not None else d_until
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    if since >= until:
        raise ConfigError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    feat_opts = FeatureOptions.from_settings(settings)
    scoring = ScoringOptions.from_settings(settings)
    dets = registry.create(detectors, settings)
    st = stats if stats is not None else runner.RunStats()
    st.since, st.until, st.detectors = since, until, [d.name for d in dets]
    if features is None:
        backend = con if con is not None else connect()
        features = feature_table(
            backend, layout, since, until, settings, columns=runner._needed_columns(dets), paths=paths, events=events
        )
    if runner.needs_context(dets):
        backend = con if con is not None else connect()
        context = behaviour_context(backend, layout, since, until, feat_opts, settings, paths=paths, events=events)
        features = runner.add_context(features, context)
    unusual, _ = runner.score_table(features, dets, scoring)
    st.events, st.unusual_events, st.chunks = features.num_rows, len(unusual), 1
    if progress is not None:
        progress(f"spark: {features.num_rows} events, {len(unusual)} unusual")
    findings = group_findings(unusual, timedelta(minutes=scoring.gap_minutes), scoring.context_weight)
    floor = scoring.min_score if min_score is None else min_score
    findings = [f for f in findings if f.gated or f.score >= floor]
    with quiet_ibis():
        if findings and describe and events is not None:
            findings = describe_from(events, findings, since, until, feat_opts, settings)
        elif findings and describe:
            from trailsight.features.source import connect as duckdb_connect

            findings = runner._describe(duckdb_connect(), layout, findings, since, until, feat_opts, settings)
        findings = runner._suppress(layout, findings, settings)
    st.findings = len(findings)
    st.seconds = time.perf_counter() - started
    if save:
        runner._save(layout, findings, st, started_at)
    return findings


def last_day(events: Any) -> tuple[datetime, datetime]:
    """The default range over a DataFrame of events: its last UTC day with data."""
    from pyspark.sql import functions as F

    from trailsight.runner import day_range

    last = events.agg(F.max("event_date")).first()[0]
    if last is None:
        raise StoreError("CloudTrail: no events read; nothing to score")
    return day_range(last)


def describe_from(
    events: Any, findings: list[Finding], since: datetime, until: datetime, opts: Any, settings: Settings | None
) -> list[Finding]:
    """:func:`trailsight.runner._describe` over a Spark DataFrame of events instead of the lake.

    Only what :func:`trailsight.findings.describe.describe` reads comes to the driver: its
    columns, of the findings' accounts, up to their last event, on the days the range reads.
    """
    from pyspark.sql import functions as F

    from trailsight.features.source import connect as duckdb_connect
    from trailsight.findings.describe import LAKE_COLUMNS
    from trailsight.runner import describe_over

    accounts = sorted({f.account_id for f in findings})
    last_seen = max(f.last_seen for f in findings).astimezone(UTC)
    frame = (
        events_between(events, since, until, opts.forget_days)
        .where(F.col("account_id").isin(accounts) & (F.col("event_time") <= F.lit(last_seen)))
        .select(*LAKE_COLUMNS)
    )
    table = to_utc_arrow(frame.toArrow())
    con = duckdb_connect()
    try:
        con.con.register("events", table)
        return describe_over(con, findings, settings, "events")
    finally:
        con.disconnect()


def stop(con: Any) -> None:
    """Stop the Spark session behind ``con`` (local mode: frees the JVM's memory)."""
    spark_session(con).stop()
