"""The ingest pipeline: sources → parse → normalise → enrich → de-duplicate → lake + state.

:func:`ingest` is the Python API (the CLI, the demo and watch mode call it). It

1. lists the sources (:mod:`~trailsight.ingest.sources`), pruning by path, and skips every
   file the manifest already holds with the same size and version;
2. groups files into tasks of a few MiB and parses, normalises and enriches them — in a
   pool of worker processes when there is enough input, else in this process — streaming
   records in chunks so memory does not grow with the input;
3. collects chunks into batches of about ``batch_rows`` rows, cut at file boundaries, and
   commits each batch: drop event ids seen earlier in the batch or already in the lake (by their
   128-bit keys, :func:`~trailsight.store.state.event_keys`, worked out in the workers), write
   one zstd Parquet file per (account, day) under a temporary name and rename it into place,
   then register the files, the new event ids, the manifest rows of the batch's files and
   its quarantine entries in ONE DuckDB transaction.

A run killed at any moment therefore leaves each file either wholly in the lake or not at all
(a file over ``4 × batch_rows`` records may commit in parts; the re-run completes it and
de-duplication keeps it exact). Parquet files a killed run wrote but never registered are
orphans: readers ignore them and the next ingest deletes them. Bad input never stops a run: it
goes to the quarantine (:mod:`~trailsight.ingest.quarantine`).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trailsight import allocation
from trailsight.config import Settings
from trailsight.errors import ConfigError, IngestError, StoreError
from trailsight.ingest import normalise as norm
from trailsight.ingest.convert import ROWS_PER_TABLE, SourceCounts, enrich, read_source
from trailsight.ingest.lock import StoreLock, detach_child
from trailsight.ingest.parse import DEFAULT_LIMITS, Limits
from trailsight.ingest.quarantine import QUARANTINE_DDL, QuarantineEntry, QuarantineWriter, insert_entries
from trailsight.ingest.sources import (
    STDIN,
    PathFilter,
    SourceFile,
    discover,
    make_s3_client,
)
from trailsight.schema import EVENT_SCHEMA
from trailsight.store import lake, state
from trailsight.store.layout import StoreLayout

DEFAULT_BATCH_ROWS: Final = 250_000
DEFAULT_DEDUP_DAYS: Final = 30
CHUNK_ROWS: Final = 32_768
TASKS_IN_FLIGHT_PER_WORKER: Final = 8
TASK_BYTES: Final = 4 << 20
FIRST_TASK_BYTES: Final = 1 << 20
TASK_FILES: Final = 512
MANIFEST_PROBE: Final = 4096

ProgressCallback = Callable[["Progress"], None]
MAX_DEPTH_SETTING: Final = 255  # orjson writes no deeper, so the row path could not keep deeper records
_LIMIT_NAMES: Final = ("max_depth", "max_record_bytes", "max_inflated_bytes", "max_inflate_ratio")


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """How to ingest: filters, S3 endpoint, parallelism, batch size.

    Read from the ``[ingest]`` section of the settings (``workers``, ``batch_rows``,
    ``endpoint_url``), overridden by keyword arguments / CLI flags.
    """

    since: datetime | None = None
    until: datetime | None = None
    accounts: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    endpoint_url: str | None = None
    workers: int | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    dedup_days: int = DEFAULT_DEDUP_DAYS
    force: bool = False
    limits: Limits = DEFAULT_LIMITS

    @classmethod
    def from_settings(cls, settings: Settings | None, **overrides: Any) -> IngestOptions:
        """Options from ``[ingest]`` of ``settings``, then ``overrides`` that are not None."""
        section: Mapping[str, Any] = settings.section("ingest") if settings is not None else {}
        where = f"{settings.path}: [ingest]" if settings is not None and settings.path else "[ingest]"
        values: dict[str, Any] = {}
        for name, kind in (("workers", int), ("batch_rows", int), ("dedup_days", int), ("endpoint_url", str)):
            if name in section:
                value = section[name]
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise ConfigError(f"{where} {name} must be {'an integer' if kind is int else 'a string'}")
                values[name] = value
        caps: dict[str, int] = {}
        for name in _LIMIT_NAMES:
            if name in section:
                value = section[name]
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ConfigError(f"{where} {name} must be a whole number of at least 1")
                if name == "max_depth" and value > MAX_DEPTH_SETTING:
                    raise ConfigError(
                        f"{where} max_depth must be at most {MAX_DEPTH_SETTING} (JSON is written no deeper)"
                    )
                caps[name] = value
        if caps:
            values["limits"] = Limits(**caps)
        unknown = set(section) - {"workers", "batch_rows", "dedup_days", "endpoint_url", *_LIMIT_NAMES}
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("accounts", "regions"):
            if key in values:
                values[key] = frozenset(values[key])
        for key in ("since", "until"):
            if values.get(key) is not None and values[key].tzinfo is None:
                values[key] = values[key].replace(tzinfo=UTC)
        opts = cls(**values)
        if opts.workers is not None and opts.workers < 0:
            raise ConfigError(f"{where} workers must be 0 or more")
        if opts.batch_rows < 1:
            raise ConfigError(f"{where} batch_rows must be at least 1")
        if opts.dedup_days < 1:
            raise ConfigError(f"{where} dedup_days must be at least 1")
        if opts.since and opts.until and opts.since >= opts.until:
            raise ConfigError(f"--since {opts.since.isoformat()} is not before --until {opts.until.isoformat()}")
        return opts

    @property
    def filters(self) -> PathFilter:
        """The path / record filters."""
        return PathFilter(since=self.since, until=self.until, accounts=self.accounts, regions=self.regions)


@dataclass(frozen=True, kw_only=True)
class IngestSummary:
    """What one ingest run did. ``records = new + duplicates + filtered + quarantined``."""

    run_id: str
    store: Path
    files: int
    skipped_files: int
    records: int
    new: int
    duplicates: int
    quarantined: int
    filtered: int
    seconds: float
    quarantine_file: Path | None = None
    enrich_errors: int = 0
    workers: int = 0
    skipped_paths: tuple[tuple[str, str], ...] = ()  # (path, why) of what discovery passed over

    @property
    def records_per_second(self) -> float:
        """Records handled per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def events_ingested(self) -> int:
        """Events added to the lake (same as ``new``)."""
        return self.new

    @property
    def exit_code(self) -> int:
        """0 when nothing was quarantined, else 3 (see ``trailsight.cli.main``)."""
        return 3 if self.quarantined else 0

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        text = (
            f"ingested {self.files:,} files ({self.skipped_files:,} already done): {self.records:,} records, "
            f"{self.new:,} new, {self.duplicates:,} duplicates, {self.quarantined:,} quarantined"
        )
        if self.filtered:
            text += f", {self.filtered:,} filtered out"
        if self.skipped_paths:
            text += f", {len(self.skipped_paths):,} paths skipped"
        text += f" in {self.seconds:.1f} s ({self.records_per_second:,.0f} records/s)"
        if self.quarantine_file is not None and self.quarantined:
            text += f"; quarantine: {self.quarantine_file}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        out = asdict(self)
        out["store"] = str(self.store)
        out["skipped_paths"] = [{"path": path, "reason": why} for path, why in self.skipped_paths]
        out["quarantine_file"] = str(self.quarantine_file) if self.quarantine_file else None
        out["records_per_second"] = round(self.records_per_second, 1)
        out["exit_code"] = self.exit_code
        return out


@dataclass(slots=True)
class Progress:
    """Running totals handed to the progress callback."""

    files_done: int = 0
    files_found: int = 0
    listing_done: bool = False
    records: int = 0
    new: int = 0
    quarantined: int = 0


# ---------------------------------------------------------------------------- worker side


@dataclass(frozen=True, slots=True)
class _Task:
    task_id: int
    sources: tuple[SourceFile, ...]


@dataclass(frozen=True, slots=True)
class _FileDone:
    source: SourceFile
    records: int
    quarantined: int
    complete: bool  # read to the end (False: the read itself failed; retry next time)
    filtered: int = 0  # records the filters left out (a later run with a wider filter reads them)


@dataclass(frozen=True, slots=True)
class _Part:
    """A temporary Parquet file a worker wrote for one partition, with the keys of its event ids."""

    tmp: str  # relative to the store root
    account_id: str
    event_date: date
    key_hi: np.ndarray  # state.event_keys of the rows' event ids, in row order
    key_lo: np.ndarray

    def __len__(self) -> int:
        return len(self.key_lo)


@dataclass(slots=True)
class _Chunk:
    task_id: int
    parts: list[_Part]
    problems: list[QuarantineEntry]
    files: list[_FileDone]
    rows: int = 0
    duplicates: int = 0
    filtered: int = 0
    enrich_errors: int = 0
    final: bool = True
    mid_file: bool = False  # the chunk ends inside a file (only for files over chunk_rows)


@dataclass(frozen=True, slots=True)
class _WorkerFailure:
    task_id: int
    message: str


@dataclass(frozen=True, kw_only=True)
class _WorkerConfig:
    store: Path
    run_id: str
    filters: PathFilter
    endpoint_url: str | None
    settings: Settings | None
    chunk_rows: int = CHUNK_ROWS
    limits: Limits = DEFAULT_LIMITS


@dataclass
class _WorkerState:
    config: _WorkerConfig
    enricher: Any = None
    enricher_loaded: bool = False
    s3: Any = None
    stdin: BinaryIO | None = None

    def s3_client(self) -> Any:
        if self.s3 is None:
            self.s3 = make_s3_client(self.config.endpoint_url)
        return self.s3

    def get_enricher(self) -> Any:
        if not self.enricher_loaded:
            self.enricher = load_enricher(self.config.settings)
            self.enricher_loaded = True
        return self.enricher


def load_enricher(settings: Settings | None) -> Any:
    """``trailsight.enrich.Enricher.from_settings(settings)`` (imported on first use, per process)."""
    from trailsight.enrich import Enricher

    return Enricher.from_settings(settings if settings is not None else Settings())


def _process_task(task: _Task, ws: _WorkerState) -> Iterator[_Chunk]:
    """Parse, normalise, filter and enrich the sources of one task, yielding chunks."""
    cfg = ws.config
    filters = cfg.filters

    layout = StoreLayout(cfg.store)
    rows: list[norm.Row] = []
    tables: list[pa.Table] = []
    pending = 0
    problems: list[QuarantineEntry] = []
    files: list[_FileDone] = []
    filtered = 0
    chunk_no = 0

    sink = norm.FastRows()

    def emit(final: bool, mid_file: bool = False) -> _Chunk:
        nonlocal rows, tables, pending, problems, files, filtered, chunk_no
        if rows:
            tables.append(norm.rows_to_table(rows))
            rows = []
        if len(sink):
            tables.append(sink.table()[0])
        n = pending
        parts: list[_Part] = []
        errors = duplicates = 0
        if tables:
            table, errors = enrich(pa.concat_tables(tables), ws.get_enricher())
            tables, pending = [], 0
            table = _first_per_event_id(table)
            duplicates = n - table.num_rows
            parts = _write_parts(layout, table, f"{cfg.run_id}-{task.task_id:06d}-{chunk_no:03d}")
        chunk = _Chunk(task.task_id, parts, problems, files, n, duplicates, filtered, errors, final, mid_file)
        rows, problems, files, filtered = [], [], [], 0
        chunk_no += 1
        return chunk

    for src in task.sources:
        counts = SourceCounts()
        file_rows = 0
        before = len(sink)
        for item in read_source(
            src, filters, counts, s3_client=ws.s3_client, stdin=ws.stdin, sink=sink, limits=cfg.limits
        ):
            if type(item) is QuarantineEntry:
                problems.append(item)
                continue
            rows.append(item)  # type: ignore[arg-type]
            pending += 1
            file_rows += 1
            if len(rows) >= ROWS_PER_TABLE:
                # Arrow early: a row keeps the parsed record's strings alive, and with them
                # the memory of the whole parse, so rows are turned into columns often.
                tables.append(norm.rows_to_table(rows))
                rows = []
                if file_rows >= cfg.chunk_rows:
                    # Only a file bigger than a chunk is cut; others end chunks at their end.
                    file_rows = 0
                    yield emit(final=False, mid_file=True)
        pending += len(sink) - before
        if len(sink) >= ROWS_PER_TABLE:
            tables.append(sink.table()[0])
        filtered += counts.filtered
        files.append(
            _FileDone(src, counts.records, counts.quarantined, counts.complete and not src.is_stdin, counts.filtered)
        )
        if pending >= cfg.chunk_rows:
            yield emit(final=False)
    yield emit(final=True)


_INHERITED_ENRICHER: Any = None


def _worker_main(task_q: Any, result_q: Any, config: _WorkerConfig, parent: int) -> None:
    """Entry point of a worker process: take tasks until ``None``, put chunks.

    The worker drops the store lock it inherited and ends when ``parent`` (the ingest) does.
    """
    detach_child(parent)
    gc.disable()  # parsed records hold no cycles; the cyclic collector only costs time here
    allocation.tune()  # a forked worker has it already; a spawned one sets it here
    ws = _WorkerState(config)
    if _INHERITED_ENRICHER is not None:
        ws.enricher, ws.enricher_loaded = _INHERITED_ENRICHER, True
    while True:
        task = task_q.get()
        if task is None:
            break
        try:
            for chunk in _process_task(task, ws):
                result_q.put(chunk)
                gc.collect(0)
        except BaseException:
            result_q.put(_WorkerFailure(task.task_id, traceback.format_exc()))
            raise


# ---------------------------------------------------------------------------- main side


def _run_inline(tasks: Iterable[_Task], ws: _WorkerState) -> Iterator[_Chunk]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        for task in tasks:
            yield from _process_task(task, ws)
            gc.collect(0)
    finally:
        if enabled:
            gc.enable()


def _mp_context() -> Any:
    """fork where it is safe and fast (Linux, Python < 3.12): workers inherit the loaded enricher
    and need no re-import (so scripts calling :func:`ingest` need no ``__main__`` guard); else spawn."""
    if sys.platform == "linux" and sys.version_info < (3, 12):
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _run_pool(tasks: Iterator[_Task], config: _WorkerConfig, n_workers: int, enricher: Any) -> Iterator[_Chunk]:
    global _INHERITED_ENRICHER
    _INHERITED_ENRICHER = enricher
    ctx = _mp_context()
    # pyarrow's first conversion looks for pandas (an import the CLI
    # skips, it is slow): make it here, once, so that forked workers inherit the answer instead of each asking.
    pa.array(np.zeros(1))
    task_q: Any = ctx.Queue()
    # Results are small (the rows are in Parquet files already), so many tasks can be in flight:
    # the workers keep busy while this process commits a batch.
    in_flight = n_workers * TASKS_IN_FLIGHT_PER_WORKER
    result_q: Any = ctx.Queue(maxsize=in_flight + n_workers)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(task_q, result_q, config, os.getpid()),
            daemon=True,
            name=f"trailsight-ingest-{i}",
        )
        for i in range(n_workers)
    ]
    for proc in procs:
        proc.start()
    outstanding = 0
    exhausted = False

    def submit() -> None:
        nonlocal outstanding, exhausted
        while not exhausted and outstanding < in_flight:
            task = next(tasks, None)
            if task is None:
                exhausted = True
                return
            task_q.put(task)
            outstanding += 1

    try:
        submit()
        while outstanding:
            try:
                msg = result_q.get(timeout=2.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise IngestError(f"an ingest worker process died (exit code {dead[0].exitcode})") from None
                continue
            if isinstance(msg, _WorkerFailure):
                raise IngestError(f"an ingest worker failed: {msg.message.strip().splitlines()[-1]}")
            if msg.final:
                outstanding -= 1
                submit()
            yield msg
        for _ in procs:
            task_q.put(None)
        for proc in procs:
            proc.join(timeout=30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        task_q.cancel_join_thread()
        result_q.cancel_join_thread()


@dataclass
class _Committer:
    """Collects chunks into batches and commits each batch atomically."""

    layout: StoreLayout
    run_id: str
    batch_rows: int
    scope: str = ""  # the run's filter (PathFilter.scope), kept with files it filtered records of
    parts: list[_Part] = field(default_factory=list)
    rows: int = 0
    files: list[_FileDone] = field(default_factory=list)
    problems: list[QuarantineEntry] = field(default_factory=list)
    mid_file_tasks: set[int] = field(default_factory=set)
    seq: int = 0
    new: int = 0
    duplicates: int = 0

    def add(self, chunk: _Chunk) -> None:
        self.parts.extend(chunk.parts)
        self.rows += sum(len(p) for p in chunk.parts)
        self.duplicates += chunk.duplicates
        self.files.extend(chunk.files)
        self.problems.extend(chunk.problems)
        if chunk.mid_file:
            self.mid_file_tasks.add(chunk.task_id)
        else:
            self.mid_file_tasks.discard(chunk.task_id)
        # Batches end between files, so a killed run leaves each file wholly in or out of the lake;
        # only a file bigger than 4 x batch_rows is committed in parts.
        if (self.rows >= self.batch_rows and not self.mid_file_tasks) or self.rows >= 4 * self.batch_rows:
            self.commit()

    def commit(self) -> None:
        """Publish the buffered parts and register them, their ids, the manifest and the quarantine at once."""
        if not self.parts and not self.files and not self.problems:
            return
        self.seq += 1
        batch_id = f"{self.run_id}-{self.seq:05d}"
        hi, lo, days = _keys_of(self.parts)
        keep = state.first_of_keys(hi, lo, days)
        published: list[lake.LakeFile] = []
        with state.connect(self.layout) as con:
            try:
                with state.transaction(con):
                    seen = self._seen(con, hi, lo, days)
                    if len(seen):
                        if keep is None:
                            keep = np.ones(len(hi), bool)
                        keep[seen] = False
                    if keep is not None:
                        hi, lo, days = hi[keep], lo[keep], days[keep]
                    published = self._publish(batch_id, keep)
                    lake.register_files(con, published, batch_id)
                    state.insert_event_keys(con, hi, lo, days, batch_id)
                    state.insert_manifest(con, _manifest_rows(self.files, self.run_id, self.scope))
                    insert_entries(con, self.run_id, self.problems)
            except BaseException:
                for item in published:
                    (self.layout.root / item.path).unlink(missing_ok=True)
                self.discard()
                raise
        added = len(hi)
        self.new += added
        self.duplicates += self.rows - added
        self.parts, self.rows, self.files, self.problems = [], 0, [], []

    def _seen(self, con: Any, hi: np.ndarray, lo: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Positions (sorted) of the batch's rows whose event id the store holds already.

        Rows of days whose keys were pruned (:func:`~trailsight.store.state.prune_event_keys`)
        are looked up among the event ids of their lake partitions instead.
        """
        horizon = state.key_horizon(con)
        if horizon is None or not (old := days < horizon).any():
            return state.seen_event_keys(con, hi, lo, days)
        recent, aged = np.flatnonzero(~old), np.flatnonzero(old)
        partitions = sorted(
            {(p.account_id, day) for p in self.parts if (day := (p.event_date - _EPOCH_DATE).days) < horizon}
        )
        found = [
            recent[state.seen_event_keys(con, hi[recent], lo[recent], days[recent])],
            aged[state.seen_in_lake(con, str(self.layout.root), partitions, hi[aged], lo[aged], days[aged])],
        ]
        return np.sort(np.concatenate(found))

    def _publish(self, batch_id: str, keep: np.ndarray | None) -> list[lake.LakeFile]:
        """Rename each part into the lake, rewriting the few that hold duplicates."""
        out: list[lake.LakeFile] = []
        offset = 0
        lake.sync_files([self.layout.root / part.tmp for part in self.parts])
        for k, part in enumerate(self.parts):
            n = len(part)
            tmp = self.layout.root / part.tmp
            name = f"{batch_id}-{k:05d}"
            mask = keep[offset : offset + n] if keep is not None else None
            offset += n
            kept = n if mask is None else int(mask.sum())
            if kept == n:
                out.append(lake.publish(self.layout, tmp, name, part.account_id, part.event_date, n, synced=True))
            elif kept == 0:
                tmp.unlink(missing_ok=True)
            else:
                table = pq.read_table(tmp, schema=EVENT_SCHEMA).filter(pa.array(mask))
                rewritten = lake.write_temp(self.layout, table, part.account_id, part.event_date, name)
                tmp.unlink(missing_ok=True)
                out.append(lake.publish(self.layout, rewritten, name, part.account_id, part.event_date, kept))
        return out

    def discard(self) -> None:
        """Delete the temporary files of parts not committed (after a failure)."""
        for part in self.parts:
            (self.layout.root / part.tmp).unlink(missing_ok=True)
        self.parts, self.rows = [], 0


_KEY_HI: Final = "_key_hi"
_KEY_LO: Final = "_key_lo"


def _keys_of(parts: list[_Part]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key high halves, key low halves, event days as int32 days since the epoch) of every row of ``parts``."""
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.int32)
    days = np.repeat(np.array([(p.event_date - _EPOCH_DATE).days for p in parts], np.int32), [len(p) for p in parts])
    return np.concatenate([p.key_hi for p in parts]), np.concatenate([p.key_lo for p in parts]), days


_EPOCH_DATE: Final = date(1970, 1, 1)


def _write_parts(layout: StoreLayout, table: pa.Table, stem: str) -> list[_Part]:
    """Write ``table`` (with the key columns :func:`_first_per_event_id` adds) as one temporary
    lake file per (account, day) partition, named ``.<stem>-NNN``; return the parts."""
    parts = []
    for k, (account, day, part) in enumerate(lake.split_partitions(table)):
        hi, lo = part.column(_KEY_HI).to_numpy(), part.column(_KEY_LO).to_numpy()
        tmp = lake.write_temp(layout, part.drop_columns([_KEY_HI, _KEY_LO]), account, day, f"{stem}-{k:03d}")
        parts.append(_Part(tmp.relative_to(layout.root).as_posix(), account, day, hi, lo))
    return parts


def _first_per_event_id(table: pa.Table) -> pa.Table:
    """Keep the first row of each event id and day (CloudTrail repeats records across deliveries),
    adding the ids' keys (:func:`~trailsight.store.state.event_keys`) as two trailing columns."""
    hi, lo = state.event_keys(table.column("event_id"))
    days = table.column("event_date").cast(pa.int32()).to_numpy()
    keep = state.first_of_keys(hi, lo, days)
    if keep is not None:
        table, hi, lo = table.filter(pa.array(keep)), hi[keep], lo[keep]
    return table.append_column(_KEY_HI, pa.array(hi)).append_column(_KEY_LO, pa.array(lo))


def _manifest_rows(files: list[_FileDone], run_id: str, scope: str) -> pa.Table:
    done = [f for f in files if f.complete]
    now = datetime.now(UTC)
    return pa.table(
        {
            "source": pa.array([f.source.key for f in done], pa.string()),
            "size": pa.array([f.source.size for f in done], pa.int64()),
            "version": pa.array([f.source.version for f in done], pa.string()),
            "run_id": pa.array([run_id] * len(done), pa.string()),
            "records": pa.array([f.records for f in done], pa.int64()),
            "quarantined": pa.array([f.quarantined for f in done], pa.int64()),
            "ingested_at": pa.array([now] * len(done), pa.timestamp("us", tz="UTC")),
            "filtered": pa.array([f.filtered for f in done], pa.int64()),
            "scope": pa.array([scope if f.filtered else "" for f in done], pa.string()),
        }
    )


def new_run_id() -> str:
    """A run id: UTC time plus a random suffix (``20250303T120000Z-1a2b3c``)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _check_paths(paths: Sequence[str]) -> None:
    if not paths:
        raise IngestError("nothing to ingest: give at least one path, glob, '-' or s3:// URI")
    # Fail on a mistyped path before anything is written.
    for text in paths:
        if text == STDIN or text.startswith("s3://"):
            continue
        path = Path(text).expanduser()
        if not path.exists() and not any(c in text for c in "*?["):
            raise IngestError(f"{text}: no such file or folder")


def _new_sources(
    found: Iterator[SourceFile], layout: StoreLayout, force: bool, counts: dict[str, int], filters: PathFilter
) -> Iterator[SourceFile]:
    """Drop sources the manifest already holds (same size and version, and no records left out
    by a narrower filter than ``filters``), probing in blocks."""
    while True:
        block = list(islice(found, MANIFEST_PROBE))
        if not block:
            return
        counts["found"] += len(block)
        known: set[str] = set()
        if not force:
            probe = [(s.key, s.size, s.version) for s in block if not s.is_stdin]
            if probe:
                with state.connect(layout, read_only=True) as con:
                    known = state.known_sources(con, probe, filters.covers if filters.active else None)
        for src in block:
            if src.key in known:
                counts["skipped"] += 1
            else:
                yield src


def _tasks(sources: Iterator[SourceFile], small: int = 0) -> Iterator[_Task]:
    """The sources in tasks of about :data:`TASK_BYTES` (the first ``small`` of :data:`FIRST_TASK_BYTES`).

    Big tasks make big chunks: fewer, larger Parquet files, each of which costs a few
    milliseconds whatever its size. The first tasks are small so that a small input still
    spreads over the workers.
    """
    batch: list[SourceFile] = []
    size = 0
    task_id = 0
    for src in sources:
        if src.is_stdin:
            if batch:
                yield _Task(task_id, tuple(batch))
                task_id += 1
                batch, size = [], 0
            yield _Task(task_id, (src,))
            task_id += 1
            continue
        batch.append(src)
        size += src.size
        if size >= (FIRST_TASK_BYTES if task_id < small else TASK_BYTES) or len(batch) >= TASK_FILES:
            yield _Task(task_id, tuple(batch))
            task_id += 1
            batch, size = [], 0
    if batch:
        yield _Task(task_id, tuple(batch))


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


@dataclass(slots=True)
class _RunTally:
    """What the chunks of one run add up to, beside what the committer counts."""

    rows: int = 0  # rows the workers kept, less the duplicates they dropped
    filtered: int = 0
    enrich_errors: int = 0
    files_read: int = 0

    def add(self, chunk: _Chunk) -> None:
        self.rows += chunk.rows - chunk.duplicates
        self.filtered += chunk.filtered
        self.enrich_errors += chunk.enrich_errors
        self.files_read += len(chunk.files)


def _open_run(layout: StoreLayout, run_id: str, started_at: datetime, paths: str) -> None:
    """Create the store's tables, log the run's start (with what it reads, ``paths``) and delete
    orphans of killed runs (under the lock)."""
    with state.connect(layout) as con:
        state.ensure_tables(con)
        lake.ensure_tables(con)
        con.execute(QUARANTINE_DDL)
        registered = lake.registered_paths(con)
        con.execute(
            "INSERT INTO ingest_runs (run_id, started_at, paths) VALUES (?, ?, ?)",
            [run_id, started_at, paths],
        )
    lake.sweep_orphans(layout, registered)


def _start_chunks(
    tasks: Iterator[_Task],
    n_workers: int,
    config: _WorkerConfig,
    ws: _WorkerState,
    enricher: Any,
) -> tuple[Iterator[_Chunk], int]:
    """The chunks of ``tasks`` and the worker processes that make them (0: this process).

    The first tasks are read ahead to tell whether the input is worth a pool: a pool needs
    more than one worker, more than two tasks and no stdin.
    """
    head = list(islice(tasks, max(n_workers, 1) * 2 + 1))
    use_pool = n_workers > 1 and len(head) > 2 and not any(s.is_stdin for t in head for s in t.sources)
    if not use_pool:
        return _run_inline(chain(head, tasks), ws), 0
    return _run_pool(chain(head, tasks), config, n_workers, enricher), n_workers


def _consume(
    chunks: Iterator[_Chunk],
    committer: _Committer,
    qwriter: QuarantineWriter,
    counts: Mapping[str, int],
    progress: ProgressCallback | None,
    prog: Progress,
) -> _RunTally:
    """Quarantine, count and commit every chunk, then the last batch; discard the uncommitted on failure."""
    tally = _RunTally()
    try:
        for chunk in chunks:
            qwriter.write(chunk.problems)
            tally.add(chunk)
            committer.add(chunk)
            if progress is not None:
                prog.files_done = tally.files_read
                prog.files_found = counts["found"] - counts["skipped"]
                prog.records = tally.rows + tally.filtered + qwriter.count
                prog.new = committer.new
                prog.quarantined = qwriter.count
                progress(prog)
        committer.commit()
    except BaseException:
        committer.discard()
        raise
    finally:
        qwriter.close()
    return tally


def _finish_run(layout: StoreLayout, summary: IngestSummary, dedup_days: int) -> None:
    """Prune old event keys after new events and log the run's totals (best effort: the events are committed)."""
    try:
        with state.connect(layout) as con:
            if summary.new:
                state.prune_event_keys(con, dedup_days)
            con.execute(
                "UPDATE ingest_runs SET finished_at = ?, files = ?, skipped_files = ?, records = ?, new = ?, "
                "duplicates = ?, quarantined = ?, filtered = ?, seconds = ? WHERE run_id = ?",
                [
                    datetime.now(UTC),
                    summary.files,
                    summary.skipped_files,
                    summary.records,
                    summary.new,
                    summary.duplicates,
                    summary.quarantined,
                    summary.filtered,
                    summary.seconds,
                    summary.run_id,
                ],
            )
    except StoreError:
        pass  # the events are committed; the run log is best effort


def ingest(
    paths: Sequence[str | Path],
    store: str | Path | StoreLayout,
    settings: Settings | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    accounts: Iterable[str] | None = None,
    regions: Iterable[str] | None = None,
    endpoint_url: str | None = None,
    workers: int | None = None,
    batch_rows: int | None = None,
    force: bool | None = None,
    progress: ProgressCallback | None = None,
    stdin: BinaryIO | None = None,
    objects: Sequence[SourceFile] = (),
) -> IngestSummary:
    """Ingest CloudTrail from ``paths`` into the store; return what happened.

    ``paths`` are files, folders (CloudTrail S3 layout or any tree of .json/.json.gz/.jsonl),
    globs, ``-`` (read ``stdin``, default ``sys.stdin``) or ``s3://bucket/prefix``. Filters
    prune by path and drop records outside them. ``workers=0`` runs in this process.
    ``objects`` are sources already known (S3 objects named by queue notifications): they are
    read like listed ones, without a listing.
    Raises :class:`~trailsight.errors.TrailsightError` only for fatal problems (a missing path,
    an unreadable store); bad input is quarantined and counted.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    layout = store if isinstance(store, StoreLayout) else StoreLayout(Path(store))
    options = IngestOptions.from_settings(
        settings,
        since=since,
        until=until,
        accounts=accounts,
        regions=regions,
        endpoint_url=endpoint_url,
        workers=workers,
        batch_rows=batch_rows,
        force=force,
    )
    texts = [str(p) for p in paths]
    if texts or not objects:
        _check_paths(texts)
    if texts.count(STDIN) > 1:
        raise IngestError("'-' (stdin) can be given only once")
    run_id = new_run_id()
    config = _WorkerConfig(
        store=layout.root,
        run_id=run_id,
        filters=options.filters,
        endpoint_url=options.endpoint_url,
        settings=settings,
        limits=options.limits,
    )
    ws = _WorkerState(config, stdin=stdin)
    enricher = ws.get_enricher()  # a broken enrichment set-up fails here, before anything is read

    layout.root.mkdir(parents=True, exist_ok=True)
    with StoreLock(layout.root):
        _open_run(layout, run_id, started_at, (" ".join(texts) or f"{len(objects)} queued objects")[:4000])
        counts = {"found": 0, "skipped": 0}
        skipped: list[tuple[str, str]] = []
        found = chain(
            discover(
                texts, options.filters, s3_client=ws.s3_client, on_skip=lambda path, why: skipped.append((path, why))
            ),
            (o for o in objects if options.filters.keep_path(o.key)),
        )
        n_workers = default_workers() if options.workers is None else options.workers
        # Enough small tasks first to tell whether the input is worth a pool (see _start_chunks).
        tasks = _tasks(_new_sources(found, layout, options.force, counts, options.filters), small=max(n_workers, 1) * 4)
        chunks, n_workers = _start_chunks(tasks, n_workers, config, ws, enricher)

        qwriter = QuarantineWriter(layout.quarantine, run_id)
        committer = _Committer(layout, run_id, options.batch_rows, options.filters.scope())
        prog = Progress()
        tally = _consume(chunks, committer, qwriter, counts, progress, prog)
        summary = IngestSummary(
            run_id=run_id,
            store=layout.root,
            files=tally.files_read,
            skipped_files=counts["skipped"],
            records=committer.new + committer.duplicates + tally.filtered + qwriter.count,
            new=committer.new,
            duplicates=committer.duplicates,
            quarantined=qwriter.count,
            filtered=tally.filtered,
            seconds=time.perf_counter() - started,
            quarantine_file=qwriter.path if qwriter.count else None,
            enrich_errors=tally.enrich_errors,
            workers=n_workers,
            skipped_paths=tuple(skipped),
        )
        _finish_run(layout, summary, options.dedup_days)
    if progress is not None:
        prog.listing_done = True
        progress(prog)
    return summary


__all__ = [
    "DEFAULT_BATCH_ROWS",
    "IngestOptions",
    "IngestSummary",
    "Progress",
    "default_workers",
    "ingest",
    "load_enricher",
    "new_run_id",
]
