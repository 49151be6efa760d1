"""Where an ingest worker's time goes, stage by stage, in microseconds of CPU per record.

Runs, in this one process and on one core, what an ingest worker does with each compact
delivery file (:func:`trailsight.ingest.pipeline._process_task` without the queues):

1. ``read`` the ``.json.gz`` file, ``gunzip`` it (isal);
2. ``compact`` — cut it into its records' texts (:func:`trailsight.ingest.parse._compact_document`);
3. ``add`` — decode and check each record, derive its identity (:meth:`FastRows.add`);
4. ``table`` — build the Arrow columns (:meth:`FastRows.table`, as often as the workers do);
5. ``enrich`` (geo, ASN, AWS network, API tactic), ``dedup`` (event-id keys, first row per key) and
   ``parquet`` (split by account and day, write the temporary lake files), once per chunk,

timing each with the process's CPU clock (``time.process_time``), so a busy machine changes the
figures less than it changes wall time. The main process's work (listing, the manifest, the
commit) is not here: ``bench/scale.py`` measures ingest end to end.

    .venv/bin/python bench/ingest_stages.py --events 250000          # simulates its own input
    .venv/bin/python bench/ingest_stages.py --logs /tmp/s/logs-1m --every 4
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from isal import igzip

from trailsight.ingest import normalise as norm
from trailsight.ingest import parse, pipeline
from trailsight.ingest.convert import ROWS_PER_TABLE
from trailsight.store.layout import StoreLayout

TABLE_ROWS = ROWS_PER_TABLE  # as the workers: the sink becomes a table this often...
CHUNK_ROWS = pipeline.CHUNK_ROWS  # ... and a chunk is enriched and written this often
STAGES = ("read", "gunzip", "compact", "add", "table", "enrich", "dedup", "parquet")


def stages(files: list[Path], out: Path) -> tuple[int, Counter[str]]:
    """(records, CPU seconds per stage) of ingesting ``files`` the way one worker does, into ``out``."""
    spent: Counter[str] = Counter()
    clock = time.process_time
    enricher = pipeline.load_enricher(None)
    layout = StoreLayout(out)
    sink = norm.FastRows()
    bounds: norm.Bounds = (None, None, frozenset(), frozenset())
    tables: list[pa.Table] = []
    records = pending = chunk = 0

    def to_table() -> None:
        if len(sink):
            t0 = clock()
            tables.append(sink.table()[0])
            spent["table"] += clock() - t0

    def write() -> None:
        nonlocal chunk
        to_table()
        t0 = clock()
        table, _ = pipeline.enrich(pa.concat_tables(tables), enricher)
        t1 = clock()
        table = pipeline._first_per_event_id(table)
        t2 = clock()
        pipeline._write_parts(layout, table, f"bench-{chunk:05d}")
        spent["enrich"] += t1 - t0
        spent["dedup"] += t2 - t1
        spent["parquet"] += clock() - t2
        tables.clear()
        chunk += 1
        gc.collect(0)

    for path in files:
        t0 = clock()
        raw = path.read_bytes()
        t1 = clock()
        data = igzip.decompress(raw)
        t2 = clock()
        doc = parse._compact_document(data)
        t3 = clock()
        if doc is None:
            raise SystemExit(f"{path}: not a compact delivery file (this bench reads only those)")
        slow, _ = sink.add(doc.texts, str(path), None, bounds)
        t4 = clock()
        if slow:
            raise SystemExit(f"{path}: records {slow[:5]} take the row path (this bench times the columnar one)")
        spent["read"] += t1 - t0
        spent["gunzip"] += t2 - t1
        spent["compact"] += t3 - t2
        spent["add"] += t4 - t3
        records += len(doc.texts)
        pending += len(doc.texts)
        del raw, data, doc
        if len(sink) >= TABLE_ROWS:
            to_table()
        if pending >= CHUNK_ROWS:
            write()
            pending = 0
    if pending:
        write()
    return records, spent


def _inputs(folder: Path, every: int) -> Iterator[Path]:
    for k, path in enumerate(sorted(folder.rglob("*.json.gz"))):
        if k % every == 0:
            yield path


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, time the stages, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=Path, help="a folder of compact .json.gz files (default: simulate --events)")
    parser.add_argument("--events", type=int, default=250_000, help="events to simulate without --logs")
    parser.add_argument("--every", type=int, default=1, help="take every k-th file of the folder (default 1)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="trailsight-stages-"))
    try:
        logs = args.logs
        if logs is None:
            logs = work / "logs"
            trailsight = str(Path(sys.executable).with_name("trailsight"))
            cmd = [trailsight, "simulate", "--out", str(logs), "--events", str(args.events)]
            subprocess.run(cmd, check=True, capture_output=True)
        files = list(_inputs(logs, max(1, args.every)))
        gc.disable()  # as in the ingest workers
        records, spent = stages(files, work / "store")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(spent.values())
    again = ["python", "bench/ingest_stages.py", *(argv if argv is not None else sys.argv[1:])]
    print(f"\n`{' '.join(again)}`: {records:,} records in {len(files):,} files, one process\n")
    print("| stage | CPU seconds | µs per record | share |")
    print("|---|---:|---:|---:|")
    for stage in STAGES:
        print(f"| {stage} | {spent[stage]:.2f} | {spent[stage] / records * 1e6:.2f} | {spent[stage] / total:.0%} |")
    print(f"| **all** | {total:.2f} | {total / records * 1e6:.2f} | 100% |")


if __name__ == "__main__":
    main()
