"""Read raw CloudTrail JSON on Spark with trailsight's own parser, normaliser and enricher.

Normalisation is not re-written in Spark SQL (it would drift from the reference). Instead:

1. the driver lists the sources with :func:`trailsight.ingest.sources.discover` — local files,
   globs, folders in the ``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD`` layout and
   ``s3://bucket/prefix`` URIs — pruned by the days wanted, the accounts and the regions;
2. the list becomes a Spark DataFrame (one row per file, numbered in listing order) and
   ``mapInArrow`` runs :func:`trailsight.ingest.convert.read_source` and the enricher on the
   executors, file by file, yielding Arrow batches of :data:`~trailsight.schema.EVENT_SCHEMA`
   rows. S3 objects are read with boto3 (``endpoint_url`` for moto or MinIO), so no
   ``hadoop-aws`` jar is needed; a record or file that cannot be read becomes a quarantine row
   (file, location, reason, snippet), never a failed task;
3. duplicate event ids of the same event day (CloudTrail delivers some records twice, with the
   same time) are dropped, keeping the first in listing order, as ``trailsight ingest`` run
   with ``workers=0`` keeps them.

:func:`read_cloudtrail` returns the de-duplicated events as a persisted DataFrame with the lake's
schema, which :func:`trailsight.engines.spark.detect` takes as ``events=`` in place of the lake.

Executors need trailsight installed and, for the geo / ASN columns, the enrichment data at the
path the settings name (``[geo] data_dir``, or ``$TRAILSIGHT_DATA`` through
``spark.executorEnv.TRAILSIGHT_DATA``); S3 credentials come from the executors' own boto3 chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from trailsight.config import Settings
from trailsight.errors import IngestError
from trailsight.ingest import normalise as norm
from trailsight.ingest.convert import ROWS_PER_TABLE, SourceCounts, enrich, read_source
from trailsight.ingest.quarantine import QuarantineEntry, QuarantineWriter
from trailsight.ingest.sources import PathFilter, SourceFile, discover, lazy_s3_client
from trailsight.schema import EVENT_COLUMNS, EVENT_SCHEMA

#: Row kinds of the converted output: an event, a quarantine entry, a file's counts.
EVENT, PROBLEM, FILE = "event", "problem", "file"

#: Columns the executors add to the event columns (all null where they do not apply).
EXTRA_FIELDS: Final = [
    pa.field("_kind", pa.string()),
    pa.field("_file_no", pa.int64()),
    pa.field("_seq", pa.int64()),  # an event's source_offset; a problem's position among its file's outputs
    pa.field("_location", pa.string()),
    pa.field("_reason", pa.string()),
    pa.field("_snippet", pa.string()),
    pa.field("_records", pa.int64()),
    pa.field("_quarantined", pa.int64()),
    pa.field("_filtered", pa.int64()),
]

#: What the executors yield: the event columns (nullable) and :data:`EXTRA_FIELDS`.
CONVERTED_SCHEMA: Final = pa.schema([f.with_nullable(True) for f in EVENT_SCHEMA] + EXTRA_FIELDS)

#: Columns of the file list the executors read.
FILE_LIST_SCHEMA: Final = pa.schema(
    [
        pa.field("file_no", pa.int64()),
        pa.field("key", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("version", pa.string()),
        pa.field("account", pa.string()),
    ]
)

#: Quarantine entries collected to the driver at most (all of them are counted).
MAX_PROBLEMS: Final = 10_000


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class CloudTrailRead:
    """Raw CloudTrail read on Spark: the events (a persisted DataFrame) and what happened.

    ``records = events + duplicates + filtered + quarantined``, as in an ingest summary.
    ``problems`` holds the first :data:`MAX_PROBLEMS` quarantine entries in listing order.
    """

    events: Any
    files: int
    records: int
    event_count: int
    duplicates: int
    quarantined: int
    filtered: int
    enrich_errors: int
    problems: list[QuarantineEntry] = field(default_factory=list)

    def line(self) -> str:
        """One line for the log: what was read."""
        text = (
            f"read {self.files:,} CloudTrail files on Spark: {self.records:,} records, {self.event_count:,} events, "
            f"{self.duplicates:,} duplicates, {self.quarantined:,} quarantined"
        )
        return text + (f", {self.filtered:,} filtered out" if self.filtered else "")

    def unpersist(self) -> None:
        """Free the cached events."""
        self.events.unpersist()


def list_sources(paths: Sequence[str], filters: PathFilter, *, endpoint_url: str | None = None) -> list[SourceFile]:
    """The CloudTrail sources ``paths`` name (pruned by ``filters``), in a stable order, each once.

    Raises :class:`~trailsight.errors.IngestError` for a path that does not exist, a pattern that
    matches nothing, stdin (``-``: executors cannot read it), or when nothing is found.
    """
    if not paths:
        raise IngestError("--cloudtrail: give at least one path, glob or s3:// URI")
    if "-" in paths:
        raise IngestError("--cloudtrail: stdin ('-') cannot be read on Spark; give files, folders or s3:// URIs")
    s3 = lazy_s3_client(endpoint_url)
    found = list(dict.fromkeys(discover(paths, filters, s3_client=s3)))
    if not found:
        raise IngestError(f"{' '.join(paths)}: no CloudTrail files (.json, .json.gz, .jsonl ...) found")
    return found


def _table(n: int, columns: dict[str, pa.Array]) -> pa.Table:
    """A :data:`CONVERTED_SCHEMA` table of ``n`` rows: ``columns`` as given, the rest null."""
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in CONVERTED_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=CONVERTED_SCHEMA)


def _events_table(table: pa.Table, file_nos: np.ndarray, enricher: Any) -> pa.Table:
    table, _ = enrich(table, enricher)  # a failed batch keeps its rows, unenriched
    table = table.combine_chunks()
    n = table.num_rows
    columns: dict[str, pa.Array] = {name: table.column(name).chunk(0) for name in EVENT_COLUMNS}
    columns["_kind"] = pa.array([EVENT] * n, pa.string())
    columns["_file_no"] = pa.array(file_nos, pa.int64())
    columns["_seq"] = columns["source_offset"].cast(pa.int64())
    return _table(n, columns)


def _problems_table(problems: list[tuple[int, int, QuarantineEntry]]) -> pa.Table:
    n = len(problems)
    return _table(
        n,
        {
            "source_file": pa.array([p.source for _, _, p in problems], pa.string()),
            "_kind": pa.array([PROBLEM] * n, pa.string()),
            "_file_no": pa.array([f for f, _, _ in problems], pa.int64()),
            "_seq": pa.array([s for _, s, _ in problems], pa.int64()),
            "_location": pa.array([p.location for _, _, p in problems], pa.string()),
            "_reason": pa.array([p.reason for _, _, p in problems], pa.string()),
            "_snippet": pa.array([p.snippet for _, _, p in problems], pa.string()),
        },
    )


def _counts_table(files: list[tuple[int, str, SourceCounts]]) -> pa.Table:
    n = len(files)
    return _table(
        n,
        {
            "source_file": pa.array([key for _, key, _ in files], pa.string()),
            "_kind": pa.array([FILE] * n, pa.string()),
            "_file_no": pa.array([f for f, _, _ in files], pa.int64()),
            "_records": pa.array([c.records for _, _, c in files], pa.int64()),
            "_quarantined": pa.array([c.quarantined for _, _, c in files], pa.int64()),
            "_filtered": pa.array([c.filtered for _, _, c in files], pa.int64()),
        },
    )


def convert_files(
    sources: Iterable[tuple[int, SourceFile]],
    filters: PathFilter,
    enricher: Any,
    s3_client: Callable[[], Any] | None = None,
) -> Iterator[pa.Table]:
    """Yield the events, quarantine rows and per-file counts of ``sources`` as :data:`CONVERTED_SCHEMA` tables.

    ``sources`` are (file number, source) pairs. Rows of consecutive files share a table of up
    to :data:`~trailsight.ingest.convert.ROWS_PER_TABLE` events (CloudTrail files are often a
    few records each), so an executor's memory follows that, not the input; each event row
    carries its file number and its position in the file (``_seq``, its ``source_offset``). The quarantine and count
    rows come last. Never raises on bad input or an unreadable source.
    """
    rows: list[norm.Row] = []
    file_nos: list[int] = []
    sink = norm.FastRows()
    problems: list[tuple[int, int, QuarantineEntry]] = []
    files: list[tuple[int, str, SourceCounts]] = []

    def rows_table() -> pa.Table:
        nonlocal rows, file_nos
        table = _events_table(norm.rows_to_table(rows), np.array(file_nos, np.int64), enricher)
        rows, file_nos = [], []
        return table

    for file_no, src in sources:
        counts = SourceCounts()
        for seq, item in enumerate(read_source(src, filters, counts, s3_client=s3_client, sink=sink, tag=file_no)):
            if type(item) is QuarantineEntry:
                problems.append((file_no, seq, item))
            else:
                rows.append(item)  # type: ignore[arg-type]
                file_nos.append(file_no)
                if len(rows) >= ROWS_PER_TABLE:
                    yield rows_table()
        files.append((file_no, src.key, counts))
        if len(sink) >= ROWS_PER_TABLE:
            yield _events_table(*sink.table(), enricher)
    if rows:
        yield rows_table()
    if len(sink):
        yield _events_table(*sink.table(), enricher)
    if problems:
        yield _problems_table(problems)
    if files:
        yield _counts_table(files)


_ENRICHER: list[tuple[Settings | None, Any]] = []


def _enricher(settings: Settings | None) -> Any:
    """One enricher per executor process and settings (Python workers are reused between tasks)."""
    from trailsight.ingest.pipeline import load_enricher

    if not _ENRICHER or _ENRICHER[0][0] != settings:
        _ENRICHER[:] = [(settings, load_enricher(settings))]
    return _ENRICHER[0][1]


def converter(
    filters: PathFilter, settings: Settings | None, endpoint_url: str | None
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: file-list batches in, :data:`CONVERTED_SCHEMA` batches out."""

    def convert(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        enricher = _enricher(settings)
        s3 = lazy_s3_client(endpoint_url)

        sources = (
            (int(row["file_no"]), SourceFile(row["key"], row["size"], row["version"], row["account"]))
            for batch in batches
            for row in batch.to_pylist()
        )
        for table in convert_files(sources, filters, enricher, s3):
            yield from table.to_batches()

    return convert


#: Driver environment variables a local session's Python workers get as they are now.
_FORWARDED_ENV: Final = ("AWS_", "BOTO_", "TRAILSIGHT_")


def _forward_env(spark: Any) -> None:
    """On a local master, give the Python workers the driver's current AWS / trailsight settings.

    Local workers inherit the environment the JVM started with, which misses whatever the
    driver set later (a notebook, a test); executors of a cluster keep their own (instance
    profile, ``spark.executorEnv.*``), so nothing is forwarded there.
    """
    import os

    sc = spark.sparkContext
    if not str(sc.master).startswith("local"):
        return
    for name, value in os.environ.items():
        if name.startswith(_FORWARDED_ENV):
            sc.environment[name] = value


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def read_cloudtrail(
    spark: Any,
    paths: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    forget_days: int = 0,
    settings: Settings | None = None,
    endpoint_url: str | None = None,
    accounts: Iterable[str] = (),
    regions: Iterable[str] = (),
    partitions: int | None = None,
) -> CloudTrailRead:
    """Read, normalise, enrich and de-duplicate the CloudTrail files ``paths`` name, on Spark.

    With a range, only the events a detect run over ``[since, until)`` reads are kept (whole UTC
    days, from ``forget_days`` and one before ``since``; see
    :func:`trailsight.features.source.event_days`); without one, everything. ``partitions``
    (default: the files, at most four per core) sets how many tasks read the files.
    ``endpoint_url`` (else ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL`` on the driver) is
    where the driver and the executors send S3 requests.
    """
    import os

    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if (since is None) != (until is None):
        raise IngestError("read_cloudtrail: give both since and until, or neither")
    start = end = None
    if since is not None and until is not None:
        from trailsight.features.source import event_days  # driver only: executors need no Ibis

        first, last = event_days(since.astimezone(UTC), until.astimezone(UTC), forget_days)
        start, end = day_start(first), day_start(last + timedelta(days=1))
    filters = PathFilter(since=start, until=end, accounts=frozenset(accounts), regions=frozenset(regions))
    # Resolved here: the executors' environment is not the driver's.
    url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    sources = list_sources(list(paths), filters, endpoint_url=url)

    file_list = pa.table(
        {
            "file_no": pa.array(range(len(sources)), pa.int64()),
            "key": [s.key for s in sources],
            "size": pa.array([s.size for s in sources], pa.int64()),
            "version": [s.version for s in sources],
            "account": pa.array([s.account for s in sources], pa.string()),
        },
        schema=FILE_LIST_SCHEMA,
    )
    cores = int(spark.sparkContext.defaultParallelism)
    slices = max(1, min(len(sources), partitions if partitions is not None else 4 * cores))
    _forward_env(spark)
    rdd = spark.sparkContext.parallelize(file_list.to_pylist(), slices)
    files = spark.createDataFrame(rdd, _spark_schema(FILE_LIST_SCHEMA))
    converted = files.mapInArrow(converter(filters, settings, url), _spark_schema(CONVERTED_SCHEMA))
    converted = converted.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        totals = converted.agg(
            F.count_if(F.col("_kind") == FILE).alias("files"),
            F.count_if(F.col("_kind") == EVENT).alias("events"),
            F.coalesce(F.sum("_quarantined"), F.lit(0)).alias("quarantined"),
            F.coalesce(F.sum("_filtered"), F.lit(0)).alias("filtered"),
            # Enrichment always fills ua_family; a batch it failed on keeps its rows without.
            F.count_if((F.col("_kind") == EVENT) & F.col("ua_family").isNull()).alias("enrich_errors"),
        ).first()
        problems = [
            QuarantineEntry(r["source_file"], r["_location"], r["_reason"], r["_snippet"] or "")
            for r in converted.where(F.col("_kind") == PROBLEM)
            .orderBy("_file_no", "_seq")
            .select("source_file", "_location", "_reason", "_snippet")
            .limit(MAX_PROBLEMS)
            .collect()
        ]
        first_seen = Window.partitionBy("event_id", "event_date").orderBy("_file_no", "_seq")
        events = (
            converted.where(F.col("_kind") == EVENT)
            .withColumn("_n", F.row_number().over(first_seen))
            .where(F.col("_n") == 1)
            .select(*EVENT_COLUMNS)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        kept = events.count()
    finally:
        converted.unpersist()
    n_events = int(totals["events"])
    return CloudTrailRead(
        events=events,
        files=int(totals["files"]),
        records=n_events + int(totals["filtered"]) + int(totals["quarantined"]),
        event_count=kept,
        duplicates=n_events - kept,
        quarantined=int(totals["quarantined"]),
        filtered=int(totals["filtered"]),
        enrich_errors=int(totals["enrich_errors"]),
        problems=problems,
    )


def write_quarantine(read: CloudTrailRead, folder: Path, run_id: str) -> Path | None:
    """Write ``read``'s quarantine entries as ``folder/<run_id>.jsonl`` (the ingest format); None if none."""
    if not read.problems:
        return None
    writer = QuarantineWriter(folder, run_id)
    try:
        writer.write(read.problems)
    finally:
        writer.close()
    return writer.path


def endpoint_from(settings: Settings | None, endpoint_url: str | None) -> str | None:
    """The S3 endpoint: ``endpoint_url``, else ``[ingest] endpoint_url`` (else boto3's environment)."""
    from trailsight.ingest.pipeline import IngestOptions

    return IngestOptions.from_settings(settings, endpoint_url=endpoint_url).endpoint_url or None


def read_for_store(
    spark: Any,
    store: Path,
    paths: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None,
    endpoint_url: str | None,
    *,
    accounts: Iterable[str] = (),
    regions: Iterable[str] = (),
    save: bool = True,
) -> tuple[CloudTrailRead, Path | None]:
    """:func:`read_cloudtrail` for a detect run on ``store``: the run's days, its settings' forget
    window and S3 endpoint; what was set aside goes to ``store/quarantine/spark-<run>.jsonl``
    unless ``save`` is False. Returns the read and that file (None when nothing was written).
    """
    from trailsight.features.options import FeatureOptions
    from trailsight.ingest.pipeline import new_run_id
    from trailsight.store.layout import StoreLayout

    raw = read_cloudtrail(
        spark,
        paths,
        since=since,
        until=until,
        forget_days=FeatureOptions.from_settings(settings).forget_days,
        settings=settings,
        endpoint_url=endpoint_from(settings, endpoint_url),
        accounts=accounts,
        regions=regions,
    )
    path = None
    if raw.quarantined and save:
        path = write_quarantine(raw, StoreLayout(store).quarantine, f"spark-{new_run_id()}")
    return raw, path


__all__ = [
    "CONVERTED_SCHEMA",
    "MAX_PROBLEMS",
    "CloudTrailRead",
    "convert_files",
    "converter",
    "endpoint_from",
    "list_sources",
    "read_cloudtrail",
    "read_for_store",
    "write_quarantine",
]
