"""Detection throughput: features + detectors + findings over a million events or more.

    .venv/bin/python bench/detect.py --source /tmp/dev [--copies 4] [--store /tmp/bench-detect]
                                     [--since 2025-02-03 --until 2025-03-10]

Builds a store by replicating an ingested store's lake ``--copies`` times under new account ids
(event ids, ARNs and account ids rewritten, so every copy is a separate organisation with the
same habits), then runs :func:`trailsight.pipeline.detect` over the whole range (or
``--since``/``--until``) and prints events/s and the process's peak resident memory. The run
goes day by day (``[detect] chunk_days = 1``), so memory follows one day of events plus the
profiles, not the lake.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from trailsight.config import Settings
from trailsight.features.source import all_lake_files, lake_day_range
from trailsight.pipeline import RunStats, detect
from trailsight.store.layout import StoreLayout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sample_events import write_lake  # the tests' helper that lays a table out as a lake


def replicate(source: StoreLayout, target: StoreLayout, copies: int) -> int:
    """Write ``copies`` renamed copies of ``source``'s lake into ``target``; return the event count."""
    files = [str(p) for p in all_lake_files(source)]
    if not files:
        raise SystemExit(f"{source.root}: no lake files; ingest something first")
    con = duckdb.connect()
    total = 0
    for day_files in _by_day(files):
        table = con.sql(f"SELECT * FROM read_parquet({day_files!r}, hive_partitioning=false)").to_arrow_table()
        for k in range(copies):
            total += table.num_rows
            write_lake(target, _rename(table, k), batch=f"copy{k}")
    return total


def _by_day(files: list[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for f in files:
        day = f.split("event_date=")[1][:10] if "event_date=" in f else ""
        groups.setdefault(day, []).append(f)
    return [groups[d] for d in sorted(groups)]


def _rename(table: pa.Table, k: int) -> pa.Table:
    if k == 0:
        return table
    suffix = f"-c{k}"

    def swap_account(col: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.replace_substring_regex(col, r"(\d)(\d{11})", rf"{k % 10}\2")

    out = table
    for name in ("account_id", "principal", "principal_arn", "actor"):
        idx = out.schema.get_field_index(name)
        out = out.set_column(idx, name, swap_account(out.column(name)))
    idx = out.schema.get_field_index("event_id")
    return out.set_column(idx, "event_id", pc.binary_join_element_wise(out.column("event_id"), suffix, ""))


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the bench store, run detect, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, help="an ingested store to replicate (e.g. the dev benchmark)")
    ap.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "trailsight-bench-detect")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--since", help="ISO date (default: the lake's first day)")
    ap.add_argument("--until", help="ISO date, exclusive (default: the day after the lake's last)")
    args = ap.parse_args(argv)
    layout = StoreLayout(args.store)
    if not layout.lake.is_dir():
        if args.source is None:
            raise SystemExit("--source is needed to build the bench store")
        t0 = time.perf_counter()
        n = replicate(StoreLayout(args.source), layout, args.copies)
        print(f"built {layout.root}: {n:,} events in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    days = lake_day_range(layout)
    assert days is not None
    since = datetime.fromisoformat(args.since).replace(tzinfo=UTC) if args.since else None
    until = datetime.fromisoformat(args.until).replace(tzinfo=UTC) if args.until else None
    since = since or datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    until = until or datetime(days[1].year, days[1].month, days[1].day, tzinfo=UTC) + timedelta(days=1)
    stats = RunStats()
    settings = Settings(data={"detect": {"chunk_days": 1}})
    t0 = time.perf_counter()
    findings = detect(layout, since, until, settings, save=False, describe=False, stats=stats)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"range            {since:%Y-%m-%d} .. {until:%Y-%m-%d} ({stats.chunks} daily chunks)")
    print(f"events scored    {stats.events:,}")
    print(f"unusual events   {stats.unusual_events:,}")
    print(f"findings         {len(findings):,}")
    print(f"seconds          {seconds:.1f}")
    print(f"events/s         {stats.events / seconds:,.0f}")
    print(f"peak memory      {peak_mb:,.0f} MiB (max RSS of this process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
