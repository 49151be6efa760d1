"""Score a run's chunks in worker processes, so every CPU works on its own day.

The local engine (:mod:`trailsight.engines.local`) builds the profiles once; after that each chunk (a day by
default) is independent: its features come from its own events and the profiles, its scores
from its features. Threads share one interpreter, and the per-chunk work holds the GIL for a
good part of its time, so on a few CPUs a pool of processes goes further.

How the work is shared: the run's profile tables are copied into a DuckDB file of their own in
the run's scratch folder (workers open it read-only), the behaviour context's daily tables are
written beside it as Parquet, and each worker keeps one connection, one
:class:`~trailsight.features.chunk.ChunkFeatures` and one context for the whole run. A chunk goes
to a worker as its span and lake files; the run's :class:`~trailsight.scoring.events.ChunkScorer`
scores it there and its unusual events come back.

Workers are started from a fork server that has imported the pipeline once, when the run starts,
so they are ready by the time the profiles are.
"""

from __future__ import annotations

import multiprocessing
import pickle
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trailsight import allocation
from trailsight.detectors.base import Detector
from trailsight.errors import ConfigError
from trailsight.features.behaviour import BehaviourContext, ContextOptions
from trailsight.features.chunk import ChunkFeatures
from trailsight.features.options import FeatureOptions
from trailsight.features.source import connect, quiet_ibis, read_events
from trailsight.scoring.events import ChunkScorer, ScoredChunk


@dataclass(frozen=True)
class Job:
    """What every chunk of one run shares (sent with each chunk; a worker sets up once per run)."""

    run: str
    database: str
    profiles: dict[str, str]
    context: tuple[str, str] | None
    features: FeatureOptions
    context_options: ContextOptions
    scorer: ChunkScorer
    columns: Sequence[str]
    threads: int


def choose(setting: Any, chunks: int, detectors: Sequence[Detector]) -> int:
    """How many worker processes a run uses (0: none, the run scores its chunks itself, in threads).

    ``setting`` is ``[detect] workers`` (default 0). Processes pay for their start and for a
    copy of the profiles; on 2 CPUs that costs more than the GIL does (see docs/detect.md), so
    they are for machines with many CPUs. Detectors that cannot be sent to another process mean none.
    """
    if setting is None:
        wanted = 0
    elif isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ConfigError("[detect] workers must be a whole number (0: score in this process)")
    else:
        wanted = min(setting, chunks)
    if wanted < 2:
        return 0
    try:
        pickle.dumps(list(detectors))
    except (pickle.PicklingError, AttributeError, TypeError):
        return 0  # e.g. a detector class defined inside a function
    return wanted


def start(processes: int) -> ProcessPoolExecutor:
    """A pool of ``processes`` workers, started now (they import the pipeline while the profiles build)."""
    context: BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload(["trailsight.pipeline"])
        context = server
    else:  # Windows: each worker starts afresh
        context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(processes, mp_context=context)
    for _ in range(processes):
        pool.submit(_ready)
    return pool


def share(
    con: Any, folder: Path, profiles: dict[str, Any], daily: dict[str, pa.Table] | None
) -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """Copy the profile tables into ``folder``/shared-….duckdb and the context tables beside it.

    Returns (database file, profile name → table name, (pday, papi) Parquet files or None).
    """
    # The file's stem names its catalog in the workers' SQL: letters, digits and _ only.
    path = folder / f"shared_{uuid.uuid4().hex[:8]}.duckdb"
    names = {name: table.get_name().rsplit(".", 1)[-1] for name, table in profiles.items()}
    quoted = str(path).replace("'", "''")
    con.con.execute(f"ATTACH '{quoted}' AS _ts_shared")
    try:
        for name, table in names.items():
            con.con.execute(f'CREATE TABLE _ts_shared."{table}" AS SELECT * FROM {profiles[name].get_name()}')
    finally:
        con.con.execute("DETACH _ts_shared")
    context = None
    if daily is not None:
        pday, papi = folder / f"{path.stem}-pday.parquet", folder / f"{path.stem}-papi.parquet"
        pq.write_table(daily["pday"], pday)
        pq.write_table(daily["papi"], papi)
        context = (str(pday), str(papi))
    return str(path), names, context


def score(
    pool: ProcessPoolExecutor, job: Job, spans: Sequence[tuple[datetime, datetime, list[Path]]]
) -> Iterator[ScoredChunk]:
    """Each span scored by the pool's workers, in span order."""
    futures: list[Future[ScoredChunk]] = [
        pool.submit(_score_chunk, job, since, until, [str(p) for p in files]) for since, until, files in spans
    ]
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


# -- in the worker -----------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _ready() -> None:
    """Nothing: submitted once per worker so that it starts (and imports) before it is needed."""


class _Worker:
    """One run's connection, feature engine, context and detectors in a worker process."""

    def __init__(self, job: Job) -> None:
        allocation.tune()

        self.con = connect(threads=job.threads, database=Path(job.database), read_only=True)
        profiles = {name: self.con.table(table) for name, table in job.profiles.items()}
        self.features = ChunkFeatures(self.con, profiles, job.features, job.columns)
        self.context = (
            BehaviourContext(
                pq.read_table(job.context[0]),
                pq.read_table(job.context[1]),
                job.features.forget_days,
                job.context_options,
            )
            if job.context is not None
            else None
        )

    def close(self) -> None:
        self.con.disconnect()


def _score_chunk(job: Job, since: datetime, until: datetime, files: list[str]) -> ScoredChunk:
    worker = _STATE.get(job.run)
    if worker is None:
        for old in _STATE.values():
            old.close()
        _STATE.clear()
        with quiet_ibis():
            worker = _STATE[job.run] = _Worker(job)
    with quiet_ibis():
        events = read_events(worker.con, files, "chunk_events")
        features = worker.features(events, "chunk_events", since, until)
        return job.scorer(features, worker.context)


__all__ = ["Job", "choose", "score", "share", "start"]
