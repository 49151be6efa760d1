"""Detection quality on the labelled dev benchmark: an ablation table, seeds to the full system.

    .venv/bin/python bench/quality.py [--store S] [--logs DIR] [--truth FILE] [--detectors a,b] [--budget 5]

Columns: ``High/day`` counts findings of High confidence, ``sev High/day`` findings of High
severity (what the calls did, trailsight.scoring.policy). ``event cov`` is the share of all
campaign events inside some finding, ``event prec`` the share of the findings' events that are
campaign events (both as the benchmark's scorer defines them).

Rows: each seed detector alone and the behaviour model alone (every finding they raise, no
alert threshold), the union of the seed detectors' findings (each rule raising its own
alerts), the seed detectors combined by trailsight's scoring (the issue-4 system), and the
full system (``trailsight detect``'s default detectors and alert threshold). A second table
shows, for each kind of benign trap, how many still fire.

Ingests the benchmark's logs into a temporary store (or reuses ``--store``), runs

A story counts as one finding: its members are folded under it (``trailsight.stories.fold``)
before scoring, as ``findings list`` shows them. ``--campaigns`` adds, per campaign, the share of
its events in its best finding or story and whether that one names all its principals.

Detection runs through :func:`trailsight.pipeline.detect` over the test period (truth.json's
test_start..test_end); each output is scored with the benchmark's own scorer
(../shared/bench/score.py). truth.json is read here only for the test period and the scoring —
never by detection.
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

from trailsight.config import Settings, load_settings
from trailsight.detectors.registry import SEEDS, available
from trailsight.pipeline import detect
from trailsight.store.layout import StoreLayout
from trailsight.stories import fold

#: The shared benchmark folder beside the repository (``../shared``).
SHARED = Path(__file__).resolve().parents[2] / "shared"
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
    store: Path,
    truth: dict[str, Any],
    names: list[str] | None,
    out: Path,
    budget: int,
    min_score: float | None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Detect with ``names`` over the test period, write JSON lines to ``out`` and score them."""
    started = time.perf_counter()
    since, until = _iso(truth["test_start"]), _iso(truth["test_end"])
    findings = detect(store, since, until, settings, names, save=False, describe=False, min_score=min_score)
    # A story is one finding: its members are folded under it, as `findings list` shows them.
    findings = fold(findings)
    seconds = time.perf_counter() - started
    with out.open("w", encoding="utf-8") as fh:
        for f in findings:
            fh.write(json.dumps(f.to_dict()) + "\n")
    scorer = _scorer()
    res: dict[str, Any] = scorer.score(truth, scorer.load_findings(str(out)), budget)
    res["seconds"] = seconds
    return res


MODEL = "behaviour_model"


def _row(label: str, res: dict[str, Any], budget: int, days: int) -> str:
    per_day = res["findings_total"] / max(1, days)
    return (
        f"| {label:24s} | {res['campaigns_detected']:>4d}/{res['campaigns_total']:<4d} | {per_day:12.1f} "
        f"| {res['high_per_day']:11.1f} | {res['severe_per_day']:12.1f} | {res['precision']:9.2f} "
        f"| {res['false_positive_findings_per_day']:6.1f} "
        f"| {res['recall_at_budget']:14.2f} | {res['average_precision']:.2f}  "
        f"| {res['traps_fired']:>5d}/{res['traps_total']:<5d} | {res['event_coverage']:9.2f} "
        f"| {res['event_precision']:10.2f} | {res['seconds']:7.1f} |"
    )


def _union(truth: dict[str, Any], files: list[Path], out: Path, budget: int) -> dict[str, Any]:
    """Score the union of several runs' findings (each seed rule raising its own alerts)."""
    with out.open("w", encoding="utf-8") as fh:
        for f in files:
            fh.write(f.read_text(encoding="utf-8"))
    scorer = _scorer()
    res: dict[str, Any] = scorer.score(truth, scorer.load_findings(str(out)), budget)
    res["seconds"] = 0.0
    res["high_per_day"] = _high_per_day(out, truth)
    res["severe_per_day"] = _high_per_day(out, truth, "severity_label")
    return res


def _high_per_day(path: Path, truth: dict[str, Any], field: str = "confidence") -> float:
    """Findings a day whose ``field`` (confidence, or severity_label) is High."""
    days = max(1, round((_iso(truth["test_end"]) - _iso(truth["test_start"])).total_seconds() / 86400))
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if json.loads(line).get(field) == "High") / days


def campaign_table(store: Path, truth: dict[str, Any], findings_file: Path) -> None:
    """Per campaign: the share of its events in its best single finding or story, and whether that
    finding names every principal the campaign's events came from (read from the lake)."""
    import duckdb

    from trailsight.store.lake import events_sql

    findings = [json.loads(line) for line in findings_file.read_text(encoding="utf-8").splitlines()]
    ids = [e for c in truth["campaigns"] for e in c["event_ids"]]
    sql, params = events_sql(StoreLayout(store))
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT event_id, actor FROM ({sql}) WHERE event_id IN (SELECT unnest(?::VARCHAR[]))", [*params, ids]
    ).fetchall()
    actor_of = dict(rows)
    print("| campaign | kind | best share | in | principals | all named |")
    print("|---|---|---|---|---|---|")
    for c in truth["campaigns"]:
        events = set(c["event_ids"])
        best = max(findings, key=lambda f: len(events & set(f["event_ids"])), default=None)
        if best is None:
            continue
        share = len(events & set(best["event_ids"])) / len(events)
        actors = {actor_of[e] for e in events if e in actor_of}
        named = set(best.get("principals") or [best.get("actor")])
        story = str(best["finding_type"]).startswith("AttackSequence:")
        print(
            f"| {c['id']} | {c['kind']} | {share:.2f} | {'story' if story else 'finding'} | {len(actors)} "
            f"| {'yes' if actors <= named else 'no'} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Print the ablation table and the benign traps that still fire, by kind."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="reuse this store (ingested already) instead of a temporary one")
    ap.add_argument("--logs", type=Path, default=DEFAULT_LOGS)
    ap.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    ap.add_argument("--detectors", help="detectors to evaluate alone, comma-separated (default: seeds, model)")
    ap.add_argument("--budget", type=int, default=5, help="findings per day for recall@budget")
    ap.add_argument("--combined-only", action="store_true", help="only the full system's row")
    ap.add_argument("--keep", type=Path, help="folder to keep each run's findings JSON lines in")
    ap.add_argument("--config", type=Path, help="a trailsight.toml to detect with (default: built-in settings)")
    ap.add_argument(
        "--campaigns", action="store_true", help="per campaign: its events' share in its best finding or story"
    )
    args = ap.parse_args(argv)
    settings = load_settings(args.config) if args.config else None
    truth = json.loads(args.truth.read_text(encoding="utf-8"))
    days = max(1, round((_iso(truth["test_end"]) - _iso(truth["test_start"])).total_seconds() / 86400))
    tmp = tempfile.TemporaryDirectory(prefix="ts-quality-")
    store = args.store
    if store is None or not StoreLayout(store).lake.is_dir():
        store = store or Path(tmp.name) / "store"
        print(f"ingesting {args.logs} into {store} ...", file=sys.stderr)
        _ingest(args.logs, store)
    alone = args.detectors.split(",") if args.detectors else [*SEEDS, MODEL]
    unknown = sorted(set(alone) - set(available()))
    if unknown:
        raise SystemExit(f"unknown detector(s): {', '.join(unknown)}")
    keep = args.keep or Path(tmp.name)
    keep.mkdir(parents=True, exist_ok=True)
    header = (
        f"| {'method':24s} | campaigns | findings/day | High/day    | sev High/day | precision | FP/day "
        f"| recall@{args.budget}/day | AP    | traps fired | event cov | event prec | seconds |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    results: dict[str, dict[str, Any]] = {}

    def run(label: str, chosen: list[str] | None, floor: float | None) -> None:
        res = run_one(store, truth, chosen, keep / f"{label}.jsonl", args.budget, floor, settings)
        res["high_per_day"] = _high_per_day(keep / f"{label}.jsonl", truth)
        res["severe_per_day"] = _high_per_day(keep / f"{label}.jsonl", truth, "severity_label")
        results[label] = res
        print(_row(label, res, args.budget, days), flush=True)

    if not args.combined_only:
        # One detector alone cannot corroborate itself: keep all its findings (ranked by score), as
        # the seed rules' rows in BASELINES.md do; the combined rows use the alert threshold.
        for name in alone:
            run(name, [name], 0.0)
        seeds_run = [n for n in SEEDS if n in results]
        if seeds_run:
            res = _union(truth, [keep / f"{n}.jsonl" for n in seeds_run], keep / "union_of_seeds.jsonl", args.budget)
            results["union_of_seeds"] = res
            print(_row("union_of_seeds", res, args.budget, days), flush=True)
        run("seeds_combined", list(SEEDS), None)
    run("full_system", None, None)
    full = results["full_system"]
    if full["undetected_campaigns"]:
        print(f"full system misses: {', '.join(full['undetected_campaigns'])}")
    print()
    shown = [k for k in ("union_of_seeds", "seeds_combined", MODEL, "full_system") if k in results]
    print("| benign trap kind         | " + " | ".join(f"{k:>16s}" for k in shown) + " |")
    print("|--------------------------|" + "|".join("-" * 18 for _ in shown) + "|")
    for kind in sorted(full["traps_fired_per_kind"]):
        cells = []
        for k in shown:
            v = results[k]["traps_fired_per_kind"].get(kind, {"fired": 0, "total": 0})
            cells.append(f"{v['fired']:>7d} of {v['total']:<6d}")
        print(f"| {kind:24s} | " + " | ".join(cells) + " |")
    if args.campaigns:
        print()
        campaign_table(store, truth, keep / "full_system.jsonl")
    print()
    print(
        "reproduce: .venv/bin/trailsight ingest ../shared/bench/dev/logs --store /tmp/dev && "
        ".venv/bin/python bench/quality.py --store /tmp/dev"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
