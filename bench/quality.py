"""Detection quality on the labelled dev benchmark: each detector alone and all combined.

    .venv/bin/python bench/quality.py [--store S] [--logs DIR] [--truth FILE] [--detectors a,b] [--budget 5]

Ingests the benchmark's logs into a temporary store (or reuses ``--store``), runs
:func:`trailsight.runner.detect` over the test period (truth.json's test_start..test_end) for
each detector alone (every finding it raises, no alert threshold — as the seed rules' rows in
BASELINES.md) and for all together (with the default alert threshold), scores each output
with the benchmark's own scorer (../shared/bench/score.py) and prints one table. truth.json is
read here only for the test period and the scoring — never by detection.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from trailsight.detectors.registry import available
from trailsight.runner import detect
from trailsight.store.layout import StoreLayout

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.is_dir():  # running from another checkout: fall back to the usual place
    SHARED = Path("/work/shared")
DEFAULT_LOGS = SHARED / "bench" / "dev" / "logs"
DEFAULT_TRUTH = SHARED / "bench" / "dev" / "truth.json"
SCORER = SHARED / "bench" / "score.py"


def _scorer() -> Any:
    spec = importlib.util.spec_from_file_location("ts_bench_score", SCORER)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the scorer {SCORER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ingest(logs: Path, store: Path) -> None:
    from trailsight.ingest import ingest

    ingest([str(logs)], store, None)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_one(
    store: Path, truth: dict[str, Any], names: list[str] | None, out: Path, budget: int, min_score: float | None
) -> dict[str, Any]:
    """Detect with ``names`` over the test period, write JSON lines to ``out`` and score them."""
    started = time.perf_counter()
    since, until = _iso(truth["test_start"]), _iso(truth["test_end"])
    findings = detect(store, since, until, None, names, save=False, describe=False, min_score=min_score)
    seconds = time.perf_counter() - started
    with out.open("w", encoding="utf-8") as fh:
        for f in findings:
            fh.write(json.dumps(f.to_dict()) + "\n")
    scorer = _scorer()
    res: dict[str, Any] = scorer.score(truth, scorer.load_findings(str(out)), budget)
    res["seconds"] = seconds
    return res


def main(argv: list[str] | None = None) -> int:
    """Print the quality table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="reuse this store (ingested already) instead of a temporary one")
    ap.add_argument("--logs", type=Path, default=DEFAULT_LOGS)
    ap.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    ap.add_argument("--detectors", help="comma-separated detectors to evaluate alone (default: all)")
    ap.add_argument("--budget", type=int, default=5, help="findings per day for recall@budget")
    ap.add_argument("--combined-only", action="store_true", help="skip the one-detector rows")
    ap.add_argument("--keep", type=Path, help="folder to keep each run's findings JSON lines in")
    args = ap.parse_args(argv)
    truth = json.loads(args.truth.read_text(encoding="utf-8"))
    tmp = tempfile.TemporaryDirectory(prefix="ts-quality-")
    store = args.store
    if store is None or not StoreLayout(store).lake.is_dir():
        store = store or Path(tmp.name) / "store"
        print(f"ingesting {args.logs} into {store} ...", file=sys.stderr)
        _ingest(args.logs, store)
    names = args.detectors.split(",") if args.detectors else sorted(available())
    runs: list[tuple[str, list[str] | None]] = [] if args.combined_only else [(n, [n]) for n in names]
    runs.append(("combined", None if not args.detectors else names))
    keep = args.keep or Path(tmp.name)
    keep.mkdir(parents=True, exist_ok=True)
    header = (
        f"| {'method':24s} | campaigns | findings/day | precision | FP/day | recall@{args.budget}/day | AP    "
        "| traps fired | event cov | seconds |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, chosen in runs:
        # One detector alone cannot corroborate itself: keep all its findings (ranked by score), as
        # the seed rules' rows in BASELINES.md do; the combined row uses the alert threshold.
        floor = None if label == "combined" else 0.0
        res = run_one(store, truth, chosen, keep / f"{label}.jsonl", args.budget, floor)
        per_day = res["findings_total"] / max(1, len(res["findings_per_test_day"]))
        print(
            f"| {label:24s} | {res['campaigns_detected']:>4d}/{res['campaigns_total']:<4d} | {per_day:12.1f} "
            f"| {res['precision']:9.2f} | {res['false_positive_findings_per_day']:6.1f} "
            f"| {res['recall_at_budget']:14.2f} | {res['average_precision']:.2f}  "
            f"| {res['traps_fired']:>5d}/{res['traps_total']:<5d} | {res['event_coverage']:9.2f} "
            f"| {res['seconds']:7.1f} |",
            flush=True,
        )
        if label == "combined" and res["undetected_campaigns"]:
            print(f"combined misses: {', '.join(res['undetected_campaigns'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
