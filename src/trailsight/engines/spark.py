"""Run the as-of feature expressions on Apache Spark through Ibis' PySpark backend.

The feature engine (:mod:`trailsight.features`) is written once in portable Ibis; this
module supplies the other engine. :func:`connect` returns an Ibis PySpark backend on a
Spark session (local mode by default, or whatever ``spark-submit`` / the cluster
configured), :class:`SparkEngine` implements the feature-engine protocol
(:mod:`trailsight.engines.base`) on it, and :func:`open_events` registers the events a range needs as the table
``events`` — from the store's Parquet lake (or Parquet ``paths`` anywhere Spark reads), or
from a DataFrame of normalised events: raw CloudTrail JSON (local files and folders, or
``s3://bucket/AWSLogs/...`` read with boto3) that
:func:`trailsight.engines.spark_cloudtrail.read_cloudtrail` parses, normalises and enriches
on the executors with trailsight's own ingest code — not re-written in Spark SQL, so it
cannot drift from ``trailsight ingest``. :class:`SparkEngine` (and :func:`detect`) take that DataFrame as ``events=``.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from trailsight.config import Settings
from trailsight.engines.base import FeaturePlan
from trailsight.errors import ConfigError, StoreError
from trailsight.finding import Finding
from trailsight.schema import EVENT_COLUMNS, EVENT_SCHEMA
from trailsight.scoring.events import ScoredChunk
from trailsight.store.layout import StoreLayout
from trailsight.timespan import day_range

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
    """Return an Ibis PySpark backend for :class:`SparkEngine` (and :func:`feature_table`)."""
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


class SparkEngine:
    """The feature engine on Spark: one chunk (the whole range) computed by Spark, scored on the driver.

    ``con`` is a backend from :func:`connect` (default: a new one on ``$TRAILSIGHT_SPARK_MASTER``
    or ``local[2]``, made when first needed). ``paths`` replaces the store's lake files (as for
    :func:`open_events`); ``features`` (a :func:`feature_table` result with at least the
    detectors' columns) skips the Spark step for the features. ``events`` (a DataFrame of
    normalised events: raw CloudTrail read by
    :func:`trailsight.engines.spark_cloudtrail.read_cloudtrail`) replaces the store's lake for
    the features, the context and the descriptions; without a range its last UTC day is scored.
    """

    def __init__(
        self,
        con: Any = None,
        *,
        paths: Sequence[str] | None = None,
        features: pa.Table | None = None,
        events: Any = None,
    ) -> None:
        self._con = con
        self.paths = paths
        self.features = features
        self.events = events

    def backend(self) -> Any:
        """The Ibis PySpark backend (made on first use)."""
        if self._con is None:
            self._con = connect()
        return self._con

    def default_range(self, layout: StoreLayout) -> tuple[datetime, datetime]:
        """The last UTC day with data: of ``events`` when given, else of the store's lake."""
        if self.events is not None:
            return last_day(self.events)
        from trailsight.engines.local import LocalEngine

        return LocalEngine().default_range(layout)

    @contextmanager
    def open(self, layout: StoreLayout, since: datetime, until: datetime, plan: FeaturePlan) -> Iterator[SparkRange]:
        """Open ``[since, until)``: nothing is computed until :meth:`SparkRange.chunks` is read."""
        yield SparkRange(self, layout, since, until, plan)


class SparkRange:
    """A range the Spark engine opened."""

    def __init__(self, engine: SparkEngine, layout: StoreLayout, since: datetime, until: datetime, plan: FeaturePlan):
        self.engine, self.layout, self.since, self.until, self.plan = engine, layout, since, until, plan

    def chunks(self) -> Iterator[tuple[str, ScoredChunk]]:
        """One chunk: the range's feature table collected to the driver, with its context, scored there."""
        eng, plan = self.engine, self.plan
        features = eng.features
        if features is None:
            features = feature_table(
                eng.backend(),
                self.layout,
                self.since,
                self.until,
                plan.settings,
                columns=list(plan.columns),
                paths=eng.paths,
                events=eng.events,
            )
        context = None
        if plan.context:
            context = behaviour_context(
                eng.backend(),
                self.layout,
                self.since,
                self.until,
                plan.features,
                plan.settings,
                paths=eng.paths,
                events=eng.events,
            )
        yield "spark", plan.scorer(features, context)

    @contextmanager
    def events_for(self, findings: Sequence[Finding]) -> Iterator[tuple[Any, str]]:
        """The events the descriptions read, in an in-memory DuckDB as the view ``events``.

        From the store's lake; or, with ``events``, only what the descriptions read comes to the
        driver: its columns, of the findings' accounts, up to their last event, on the range's days.
        """
        from trailsight.features.source import connect as duckdb_connect
        from trailsight.features.source import open_events as duckdb_open_events

        con = duckdb_connect()
        try:
            if self.engine.events is None:
                duckdb_open_events(con, self.layout, self.since, self.until, self.plan.features.forget_days)
            else:
                con.con.register("events", self._driver_events(findings))
            yield con, "events"
        finally:
            con.disconnect()

    @contextmanager
    def calls_for(self, findings: Sequence[Finding]) -> Iterator[tuple[Any, str]]:
        """The calls what the findings did is read from, in an in-memory DuckDB as the view ``events``.

        From the store's lake; or, with ``events``, to the driver come only the rows the pipeline
        reads there, chosen on Spark: the findings' own events, the calls of the APIs
        ``effects.csv`` lists, the calls of each finding's session (the rule of
        :mod:`trailsight.findings.session`, its table of wanted sessions broadcast to the events),
        the range's successful lineage calls (:data:`trailsight.store.lineage.LINEAGE_CALLS`), and
        one row per (account, principal) at its first time in the range read.
        """
        from trailsight.features.source import connect as duckdb_connect
        from trailsight.features.source import open_events as duckdb_open_events

        con = duckdb_connect()
        try:
            if self.engine.events is None:
                duckdb_open_events(con, self.layout, self.since, self.until, self.plan.features.forget_days)
            else:
                con.con.register("events", self._driver_calls(findings))
            yield con, "events"
        finally:
            con.disconnect()

    def _driver_calls(self, findings: Sequence[Finding]) -> pa.Table:
        """The rows of the calls view (see :meth:`calls_for`), chosen on Spark, with :func:`driver_call_columns`."""
        from pyspark.sql import functions as F

        from trailsight.findings.session import SESSION_MATCH, sessions_wanted
        from trailsight.findings.touched import watched_names
        from trailsight.scoring.options import ScoringOptions
        from trailsight.store.lineage import LINEAGE_CALLS

        frame = events_between(self.engine.events, self.since, self.until, self.plan.features.forget_days)
        ids = sorted({e for f in findings for e in f.event_ids})
        in_range = (F.col("event_time") >= F.lit(self.since.astimezone(UTC))) & (
            F.col("event_time") < F.lit(self.until.astimezone(UTC))
        )
        chosen = (
            F.col("event_id").isin(ids) | F.col("event_name").isin(watched_names()) | (F.expr(LINEAGE_CALLS) & in_range)
        )
        calls = frame.where(F.coalesce(chosen, F.lit(False)))
        gap = timedelta(minutes=ScoringOptions.from_settings(self.plan.settings).gap_minutes)
        wanted = sessions_wanted(findings, gap)
        if wanted is not None:
            # The findings' sessions (session.py's rule, on Spark): a small table broadcast to the events.
            sessions = frame.sparkSession.createDataFrame(wanted.to_pylist(), schema=_WANTED_SCHEMA)
            in_sessions = frame.alias("e").join(F.broadcast(sessions).alias("w"), F.expr(SESSION_MATCH), "left_semi")
            calls = calls.unionByName(in_sessions.where(~F.coalesce(chosen, F.lit(False))))
        columns = driver_call_columns()
        calls = calls.select(*columns)
        kept = ("account_id", "principal", "event_time")
        firsts = frame.groupBy("account_id", "principal").agg(F.min("event_time").alias("event_time"))
        firsts = firsts.select(
            *[F.col(c) if c in kept else F.lit(None).cast(frame.schema[c].dataType).alias(c) for c in columns]
        )
        return to_utc_arrow(calls.unionByName(firsts).toArrow())

    def _driver_events(self, findings: Sequence[Finding]) -> pa.Table:
        from pyspark.sql import functions as F

        from trailsight.findings.describe import LAKE_COLUMNS

        accounts = sorted({f.account_id for f in findings})
        last_seen = max(f.last_seen for f in findings).astimezone(UTC)
        frame = (
            events_between(self.engine.events, self.since, self.until, self.plan.features.forget_days)
            .where(F.col("account_id").isin(accounts) & (F.col("event_time") <= F.lit(last_seen)))
            .select(*LAKE_COLUMNS)
        )
        return to_utc_arrow(frame.toArrow())


#: The Spark type of :func:`trailsight.findings.session.sessions_wanted`'s table.
_WANTED_SCHEMA = "n BIGINT, actor STRING, key STRING, ip STRING, lo TIMESTAMP, hi TIMESTAMP"


def driver_call_columns() -> list[str]:
    """The columns of the calls view the raw path hands the driver: what effects, sessions and lineage read."""
    from trailsight.findings.touched import CALL_COLUMNS
    from trailsight.store.lineage import LINEAGE_COLUMNS

    return list(dict.fromkeys([*CALL_COLUMNS, *LINEAGE_COLUMNS, "actor", "access_key_id", "source_ip", "error_code"]))


def detect(
    store: Path | str | StoreLayout,
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None = None,
    detectors: Sequence[str] | None = None,
    *,
    con: Any = None,
    paths: Sequence[str] | None = None,
    features: pa.Table | None = None,
    events: Any = None,
    **options: Any,
) -> list[Finding]:
    """:func:`trailsight.pipeline.detect` with a :class:`SparkEngine` (same arguments and result).

    The feature table of the range is collected to the driver for the detectors, so give a
    cluster ranges of a day or so at a time (:mod:`trailsight.spark_job` does). The store folder
    receives the findings and its feedback suppresses them, whatever the events' source.
    """
    from trailsight.pipeline import detect as run

    engine = SparkEngine(con, paths=paths, features=features, events=events)
    return run(store, since, until, settings, detectors, engine=engine, **options)


def last_day(events: Any) -> tuple[datetime, datetime]:
    """The default range over a DataFrame of events: its last UTC day with data."""
    from pyspark.sql import functions as F

    last = events.agg(F.max("event_date")).first()[0]
    if last is None:
        raise StoreError("CloudTrail: no events read; nothing to score")
    return day_range(last)


def stop(con: Any) -> None:
    """Stop the Spark session behind ``con`` (local mode: frees the JVM's memory)."""
    spark_session(con).stop()
