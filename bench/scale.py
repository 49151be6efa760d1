"""Throughput and memory of ingest and detect at N events, against floors measured in the same run.

For each N (default 5,000,000; ``--events 1000000,2000000,5000000`` for a list) this script

1. writes N events of CloudTrail with the simulator's scale mode (not timed);
2. **ingest** — runs ``trailsight ingest`` on them into a fresh store;
   its *floor* is DuckDB reading the same files with
   ``read_json(..., format='auto', maximum_object_size=64MB)`` + ``unnest(Records)`` + ``count(*)``;
3. **detect** — runs ``trailsight detect --no-save`` over every day of the lake;
   its *floor* is a plain DuckDB group-by over the lake (``count(*) GROUP BY principal, event_name``)
   (``--steps ingest`` leaves this step out).

Every measured step runs as its own process. Peak memory is the largest resident set of the
process tree, sampled from /proc every 50 ms (worker processes add up), and
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of the biggest single process as a cross-check.
The ratio column is events/s of the step divided by events/s of its floor.

On a shared machine one measurement moves by 15-25 %. With ``--repeat R`` each step and its
floor run R times, taking turns (floor, step, floor, step, ...; every ingest into a fresh store,
every detect with a cold profile cache): the table then gives the median seconds, the median
floor rate, the median of the R ratios with their range in brackets, and the largest peaks.

``--against SRC`` compares detect with another revision of the code: ``SRC`` is the folder that
holds its ``trailsight`` package (a checkout's ``src``), put first on ``PYTHONPATH``. The logs are
ingested once more with that code into a store of its own, and each turn runs its detect just
before this code's, over the same days, both with a cold profile cache: the row
``detect (against)`` and, under the table, the change in detect events/s (the median of the
turns' ratios, with their range). Taking turns on the same machine is what makes two revisions
comparable there; run one after the other, each meets a different moment of a shared machine.

It prints a markdown table and the command that reproduces it. Run it when the machine is
otherwise idle: it is CPU-bound and the figures are only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Measure:
    """One measured process: wall seconds, peak tree RSS and largest single RSS (bytes)."""

    seconds: float
    peak_tree: int
    peak_single: int
    stdout: str


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * PAGE
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run ``cmd`` in a wrapper process that reports its children's ru_maxrss; sample tree RSS."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n"
        "sys.stderr.write('\\nMAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stdout.buffer.write(p.stdout)\n"
        "sys.exit(p.returncode)\n"
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", wrapper, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{err.decode()[-2000:]}")
    single = 0
    for line in err.decode().splitlines():
        if line.startswith("MAXRSS "):
            single = int(line.split()[1]) * 1024
    return Measure(seconds, peak, single, out.decode())


def _floor_script(sql: str) -> list[str]:
    code = (
        "import duckdb; con = duckdb.connect(); con.execute('SET enable_progress_bar = false'); "
        f"print(con.sql({sql!r}).fetchall()[0][0])"
    )
    return [sys.executable, "-c", code]


def _lake_days(store: Path) -> tuple[str, str, int]:
    con = duckdb.connect()
    row = con.execute(
        "SELECT min(event_date)::VARCHAR, (max(event_date) + 1)::VARCHAR, count(*) "
        "FROM read_parquet(?, hive_partitioning = false)",
        [str(store / "lake" / "**" / "*.parquet")],
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1]), int(row[2])


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def run(
    n: int,
    work: Path,
    trailsight: str,
    steps: frozenset[str] = frozenset({"ingest", "detect"}),
    repeat: int = 1,
    against: Path | None = None,
) -> tuple[list[str], str]:
    """Measure one N (the ``steps`` of it), each step and its floor ``repeat`` times, taking turns
    (with ``against``, that code's detect too); return its table rows and the line comparing the two."""
    logs, store, other = work / f"logs-{n}", work / f"store-{n}", work / f"store-{n}-against"
    for folder in (logs, store, other):
        shutil.rmtree(folder, ignore_errors=True)
    other_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(against), os.environ.get("PYTHONPATH", "")])}
    print(f"# {n:,} events: simulating ...", file=sys.stderr, flush=True)
    subprocess.run([trailsight, "simulate", "--out", str(logs), "--events", str(n)], check=True, capture_output=True)
    raw = sum(p.stat().st_size for p in logs.rglob("*.json.gz"))
    pattern = str(logs / "**" / "*.json.gz")
    floor_in_cmd = _floor_script(
        f"SELECT count(*) FROM (SELECT unnest(Records) FROM read_json('{pattern}', format='auto', "
        "maximum_object_size=67108864))"
    )
    lake_glob = str(store / "lake" / "**" / "*.parquet")
    floor_det_cmd = _floor_script(
        "SELECT count(*) FROM (SELECT principal, event_name, count(*) FROM "
        f"read_parquet('{lake_glob}', hive_partitioning=false) GROUP BY ALL)"
    )
    measured: dict[str, list[tuple[Measure, Measure]]] = {"ingest": [], "detect": [], "detect (against)": []}
    since = until = ""
    if against is not None and "detect" in steps:
        print(f"# {n:,}: ingest with {against} ...", file=sys.stderr, flush=True)
        measure([trailsight, "ingest", str(logs), "--store", str(other)], env=other_env)
    for k in range(repeat):
        turn = f" ({k + 1}/{repeat})" if repeat > 1 else ""
        print(f"# {n:,}: ingest floor{turn} ...", file=sys.stderr, flush=True)
        floor_in = measure(floor_in_cmd)
        assert int(floor_in.stdout.strip()) == n, floor_in.stdout
        print(f"# {n:,}: ingest{turn} ...", file=sys.stderr, flush=True)
        shutil.rmtree(store, ignore_errors=True)
        ing = measure([trailsight, "ingest", str(logs), "--store", str(store)])
        since, until, rows = _lake_days(store)
        assert rows == n, (rows, n)
        measured["ingest"].append((ing, floor_in))
        if "detect" not in steps:
            continue
        print(f"# {n:,}: detect floor{turn} ...", file=sys.stderr, flush=True)
        floor_det = measure(floor_det_cmd)
        detect_cmd = ["detect", "--since", since, "--until", until, "--no-save", "--output", os.devnull]
        if against is not None:
            print(f"# {n:,}: detect with {against}{turn} ...", file=sys.stderr, flush=True)
            (other / "profiles.duckdb").unlink(missing_ok=True)
            theirs = measure([trailsight, *detect_cmd, "--store", str(other)], env=other_env)
            measured["detect (against)"].append((theirs, floor_det))
        print(f"# {n:,}: detect {since} .. {until}{turn} ...", file=sys.stderr, flush=True)
        (store / "profiles.duckdb").unlink(missing_ok=True)  # each detect starts with a cold profile cache
        measured["detect"].append((measure([trailsight, *detect_cmd, "--store", str(store)]), floor_det))
    lake = sum(p.stat().st_size for p in (store / "lake").rglob("*.parquet"))

    def row(step: str) -> str:
        pairs = measured[step]
        seconds = statistics.median([m.seconds for m, _ in pairs])
        floor_rate = statistics.median([n / f.seconds for _, f in pairs])
        ratios = sorted((n / m.seconds) / (n / f.seconds) for m, f in pairs)
        spread = f" ({ratios[0]:.3f}–{ratios[-1]:.3f})" if len(ratios) > 1 else ""
        return (
            f"| {n:,} | {step} | {seconds:,.1f} | {n / seconds:,.0f} | {floor_rate:,.0f} "
            f"| {statistics.median(ratios):.3f}{spread} | {_gb(max(m.peak_tree for m, _ in pairs))} "
            f"| {_gb(max(m.peak_single for m, _ in pairs))} |"
        )

    print(
        f"# {n:,}: raw gz {raw / n:.0f} B/event, lake {lake / n:.0f} B/event, days {since}..{until}",
        file=sys.stderr,
        flush=True,
    )
    sizes = f"| {n:,} | (sizes) | | | | | lake {lake / n:.0f} B/event | gz input {raw / n:.0f} B/event |"
    versus = ""
    if measured["detect (against)"]:
        # Each turn's ratio of events/s: this code's detect over the other's, run just before it.
        changes = sorted(
            theirs.seconds / ours.seconds - 1
            for (ours, _), (theirs, _) in zip(measured["detect"], measured["detect (against)"], strict=True)
        )
        versus = (
            f"{n:,} events: detect events/s {statistics.median(changes):+.1%} against {against} "
            f"(turns {changes[0]:+.1%} to {changes[-1]:+.1%})"
        )
    return [row(step) for step in ("ingest", "detect", "detect (against)") if measured[step]] + [sizes], versus


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every N, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="5000000", help="N or a comma-separated list (default 5000000)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs and stores")
    parser.add_argument(
        "--steps", default="ingest,detect", help="steps to measure: ingest, or ingest,detect (the default)"
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="compare detect with the trailsight package in this folder (another revision's src), taking turns",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each step and its floor this many times, taking turns, and report medians (default 1)",
    )
    args = parser.parse_args(argv)
    sizes = [int(x.replace("_", "")) for x in args.events.split(",") if x.strip()]
    steps = frozenset(x.strip() for x in args.steps.split(",") if x.strip())
    if not steps <= {"ingest", "detect"} or "ingest" not in steps:
        parser.error("--steps is ingest or ingest,detect (detect reads the lake ingest writes)")
    if args.repeat < 1:
        parser.error("--repeat is at least 1")
    trailsight = str(Path(sys.executable).with_name("trailsight"))
    work = args.work or Path(tempfile.mkdtemp(prefix="trailsight-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [
        "| events | step | seconds | events/s | floor events/s | ratio | peak RSS (tree) | peak RSS (1 process) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    versus: list[str] = []
    if args.against is not None and not (args.against / "trailsight" / "__init__.py").is_file():
        parser.error(f"--against {args.against}: no trailsight package there (give a checkout's src folder)")
    try:
        for n in sizes:
            table, line = run(n, work, trailsight, steps, args.repeat, args.against)
            rows += table
            versus += [line] if line else []
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    cpus = os.cpu_count()
    again = ["python", "bench/scale.py", "--events", args.events]
    if steps != {"ingest", "detect"}:
        again += ["--steps", args.steps]
    if args.repeat > 1:
        again += ["--repeat", str(args.repeat)]
    if args.against is not None:
        again += ["--against", str(args.against)]
    print(f"\n`{shlex.join(again)}` ({cpus} CPUs)\n")
    print("\n".join(rows))
    if versus:
        print("\n" + "\n".join(versus))
    assert resource  # getrusage is used in the wrapper process


if __name__ == "__main__":
    main()
