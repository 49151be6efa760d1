"""Ingest throughput against DuckDB's own JSON reader, on the same files, in the same run.

Builds (or takes with ``--input``) a folder of CloudTrail ``.json.gz`` files in the S3 layout,
then measures:

* the floor — DuckDB ``read_json(glob, format='auto', maximum_object_size=64 MB)`` +
  ``unnest(Records)`` + ``count(*)``;
* ``trailsight ingest`` end to end (a fresh store; parse, normalise, enrich, de-duplicate,
  write Parquet, commit) as a subprocess, timing its whole wall time and sampling the
  resident memory of its process tree;

and prints records/s of both, their ratio, and peak memory. Synthetic input is made from
the records of the dev set (``../shared/bench/dev/logs``, or ``--templates``): each copy gets
a new eventID and its file a new name, so nothing is a duplicate. No network is needed.

    .venv/bin/python bench/ingest.py --events 1000000
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import orjson

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATES = ROOT.parent / "shared" / "bench" / "dev" / "logs"
FLOOR_SQL = (
    "SELECT count(*) FROM (SELECT unnest(Records) FROM "
    "read_json('{glob}', format='auto', maximum_object_size=67108864))"
)


def load_templates(folder: Path, limit: int) -> list[dict[str, Any]]:
    """Records of the CloudTrail files under ``folder`` (at most ``limit``)."""
    out: list[dict[str, Any]] = []
    for name in sorted(folder.rglob("*.json.gz")):
        with gzip.open(name, "rb") as fh:
            out.extend(orjson.loads(fh.read())["Records"])
        if len(out) >= limit:
            break
    if not out:
        sys.exit(f"no CloudTrail templates under {folder}")
    return out[:limit]


def build(out: Path, events: int, per_file: int, templates: list[dict[str, Any]]) -> int:
    """Write ``events`` records in files of ``per_file`` under ``out``/AWSLogs; return the file count."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in templates:
        groups[(str(rec.get("recipientAccountId", "111111111111")), str(rec.get("awsRegion", "us-east-1")))].append(rec)
    keys = sorted(groups, key=lambda k: -len(groups[k]))
    weights = [len(groups[k]) for k in keys]
    total_w = sum(weights)
    written = 0
    files = 0
    serial = 0
    cursor = dict.fromkeys(keys, 0)
    while written < events:
        for key, weight in zip(keys, weights, strict=True):
            if written >= events:
                break
            n_files = max(1, round(weight / total_w * 50))
            for _ in range(n_files):
                if written >= events:
                    break
                pool = groups[key]
                take = min(per_file, events - written)
                batch = []
                for _ in range(take):
                    rec = dict(pool[cursor[key] % len(pool)])
                    cursor[key] += 1
                    serial += 1
                    rec["eventID"] = f"{serial:08x}-b0b0-4e00-8000-{secrets.token_hex(6)}"
                    batch.append(rec)
                stamp = str(batch[-1].get("eventTime", "2025-03-03T00:00:00Z"))
                day = stamp[:10].split("-")
                account, region = key
                folder = out / "AWSLogs" / account / "CloudTrail" / region / day[0] / day[1] / day[2]
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{account}_CloudTrail_{region}_{''.join(day)}T{stamp[11:13]}{stamp[14:16]}Z_{files:07d}.json.gz"
                (folder / name).write_bytes(gzip.compress(orjson.dumps({"Records": batch}), compresslevel=6))
                written += take
                files += 1
    return files


def floor(pattern: str) -> tuple[int, float]:
    """DuckDB's own read of the files: (records, seconds)."""
    con = duckdb.connect()
    started = time.perf_counter()
    rows = con.execute(FLOOR_SQL.format(glob=pattern.replace("'", "''"))).fetchall()
    seconds = time.perf_counter() - started
    con.close()
    return int(rows[0][0]), seconds


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        proc = int(entry.name)
        children[int(fields[1])].append(proc)
        rss[proc] = int(fields[21]) * page
    total = 0
    stack = [pid]
    while stack:
        proc = stack.pop()
        total += rss.get(proc, 0)
        stack.extend(children.get(proc, ()))
    return total


def run_ingest(cmd: list[str]) -> tuple[dict[str, Any], float, int, int]:
    """Run the ingest command; return (summary, wall seconds, peak tree RSS, peak single RSS)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        sys.exit(f"ingest failed ({proc.returncode}): {err.decode()[-2000:]}")
    import resource

    single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return orjson.loads(out.splitlines()[-1]), seconds, peak[0], single


def main() -> None:
    """Build or take the input, measure the floor and the ingest, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="records to generate (default 1,000,000)")
    parser.add_argument("--per-file", type=int, default=500, help="records per generated file (default 500)")
    parser.add_argument("--input", type=Path, help="use this CloudTrail folder instead of generating one")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "trailsight-bench", help="scratch folder"
    )
    parser.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES, help="CloudTrail to copy records from")
    parser.add_argument("--workers", type=int, default=None, help="ingest --workers (default: its own default)")
    parser.add_argument("--keep-store", action="store_true", help="keep the store after the run")
    args = parser.parse_args()

    if args.input is not None:
        source = args.input.resolve()
    else:
        source = (args.work / f"input-{args.events}-{args.per_file}").resolve()
        marker = source / ".complete"
        if not marker.exists():
            shutil.rmtree(source, ignore_errors=True)
            t0 = time.perf_counter()
            templates = load_templates(args.templates, 300_000)
            n_files = build(source, args.events, args.per_file, templates)
            marker.write_text(f"{args.events} records in {n_files} files\n")
            print(f"generated {args.events:,} records in {n_files:,} files in {time.perf_counter() - t0:.0f} s")
    pattern = str(source / "AWSLogs" / "*" / "CloudTrail" / "*" / "*" / "*" / "*" / "*.json.gz")
    inputs = [Path(p) for p in glob.glob(pattern)]  # noqa: PTH207 - the same glob DuckDB reads
    n_files = len(inputs)
    size = sum(p.stat().st_size for p in inputs)
    print(f"input: {source} — {n_files:,} files, {size / 2**20:,.0f} MiB gzip")

    records, floor_s = floor(pattern)
    floor_rate = records / floor_s
    print(
        f"floor  (DuckDB read_json + unnest + count): {records:,} records in {floor_s:.1f} s "
        f"= {floor_rate:,.0f} records/s"
    )

    store = (args.work / "store").resolve()
    shutil.rmtree(store, ignore_errors=True)
    cmd = [str(Path(sys.executable).parent / "trailsight"), "ingest", str(source), "--store", str(store), "--json"]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    summary, wall, peak, single = run_ingest(cmd)
    rate = summary["records"] / wall
    print(
        f"ingest (trailsight, end to end):           {summary['records']:,} records in {wall:.1f} s "
        f"= {rate:,.0f} records/s "
        f"({summary['new']:,} new, {summary['duplicates']:,} duplicates, {summary['quarantined']:,} quarantined, "
        f"{summary['workers']} workers)"
    )
    # The machine is shared: measure the floor again after the ingest and compare with both.
    records2, floor2_s = floor(pattern)
    floor2_rate = records2 / floor2_s
    print(
        f"floor again after the ingest:              {records2:,} records in {floor2_s:.1f} s "
        f"= {floor2_rate:,.0f} records/s"
    )
    mean_floor = (floor_rate + floor2_rate) / 2
    print(
        f"ratio ingest / floor: {rate / mean_floor:.2f} (to the mean floor; "
        f"{rate / floor_rate:.2f} and {rate / floor2_rate:.2f} to each)"
    )
    print(
        f"ingest's own time (without process start-up): {summary['seconds']:.1f} s "
        f"= {summary['records'] / summary['seconds']:,.0f} records/s"
    )
    print(
        f"peak memory: {peak / 2**20:,.0f} MiB resident for the whole process tree (sampled every 0.1 s); "
        f"largest process {single / 2**20:,.0f} MiB"
    )
    again = ["python", "bench/ingest.py", *sys.argv[1:]]
    print("reproduce: " + " ".join(again))
    print("ingest command: " + " ".join(cmd))
    if not args.keep_store:
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
