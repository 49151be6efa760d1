"""Feedback and suppression on the labelled dev benchmark: findings per day before and after.

    .venv/bin/python bench/feedback.py [--store S] [--logs DIR] [--truth FILE] [--budget 5] [--keep DIR]

Rows (each scored with the benchmark's own scorer, ../shared/bench/score.py, on the findings
that are *raised*, i.e. not Suppressed):

* **no feedback** — :func:`trailsight.pipeline.detect` over the test week (test_start..test_end).
* **day by day, no feedback** — the same detection run one test day at a time (what the next two
  rows start from; it differs from the first only where a burst crosses midnight).
* **analyst feedback, day by day** — a simulated analyst runs detect for each test day in turn, with
  the verdicts of the earlier days in the store, and triages that day's raised findings with the
  same call ``trailsight findings dismiss`` / ``malicious`` make
  (:func:`trailsight.store.findings.set_status`): a finding touching no campaign event is dismissed
  as benign, one touching a campaign is marked malicious. The next day runs with that feedback.
* **feedback as findings close** — the same verdicts replayed on the day-by-day findings, each
  applied as soon as its finding closes rather than at the end of the day (no detect run: the rule
  a dismissal stands for, :func:`trailsight.findings.suppress.rule_from_finding`, applied with
  :func:`~trailsight.findings.suppress.apply_suppressions`).
* **suppression rules file** — after test day 1 the team writes a TOML rules file
  (:func:`trailsight.findings.suppress.load_rules` format) from the day-1 dismissals: one rule per
  dismissed finding, for that actor in that account doing only those APIs, from anywhere, with a
  reason and a 30-day expiry. It is named in ``[detect] suppressions`` and applies to days 2..7.

truth.json plays the analyst's verdicts and scores the output; detection never reads it. Every
run works on a copy of the store (detect and triage write its state database); the store given
with ``--store`` is only read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# bench/ is on sys.path when this runs as a script: the benchmark paths and scorer live in quality.py.
from quality import DEFAULT_LOGS, DEFAULT_TRUTH, _scorer
from trailsight.config import Settings
from trailsight.detectors.registry import SEEDS
from trailsight.finding import Finding
from trailsight.findings.suppress import apply_suppressions, finding_apis, load_rules, rule_from_finding
from trailsight.pipeline import detect
from trailsight.store.findings import set_status
from trailsight.store.layout import StoreLayout

RULE_DAYS = 30
"""How long the day-1 rules hold (their ``expires``)."""


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _days(truth: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    start, end = _iso(truth["test_start"]), _iso(truth["test_end"])
    out = []
    while start < end:
        out.append((start, min(end, start + timedelta(days=1))))
        start += timedelta(days=1)
    return out


def _copy_store(src: Path, dst: Path) -> Path:
    """A fresh working copy of the ingested store: its lake and ingest state, no findings or feedback."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.lock", "*.wal"))
    import duckdb

    con = duckdb.connect(str(StoreLayout(dst).state))
    try:
        for table in ("findings", "feedback", "runs"):
            con.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        con.close()
    return dst


@dataclass
class Row:
    """One scenario's findings: raised and suppressed, as detect returned them."""

    label: str
    raised: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)
    per_day: list[tuple[int, int, int]] = field(default_factory=list)  # raised, raised benign, suppressed
    seconds: float = 0.0

    def add(self, findings: Sequence[Finding], is_campaign: Any) -> None:
        raised = [f for f in findings if f.status != "Suppressed"]
        suppressed = [f for f in findings if f.status == "Suppressed"]
        self.raised += raised
        self.suppressed += suppressed
        self.per_day.append((len(raised), sum(1 for f in raised if not is_campaign(f)), len(suppressed)))


def _score(scorer: Any, truth: dict[str, Any], findings: Sequence[Finding], path: Path, budget: int) -> dict[str, Any]:
    with path.open("w", encoding="utf-8") as fh:
        for f in findings:
            fh.write(json.dumps(f.to_dict()) + "\n")
    res: dict[str, Any] = scorer.score(truth, scorer.load_findings(str(path)), budget)
    return res


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def rules_from_dismissals(dismissed: Sequence[Finding], day: datetime) -> str:
    """The rules file a team writes from one day's dismissals (one rule per finding, deduplicated)."""
    expires = (day + timedelta(days=RULE_DAYS)).date().isoformat()
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    parts = [f"# Written after triage of {day:%Y-%m-%d}: the findings dismissed as benign that day.\n"]
    for f in dismissed:
        actor = f.actor or f.principal
        apis = tuple(sorted(finding_apis(f)))
        key = (actor, f.account_id, apis)
        if key in seen:
            continue
        seen.add(key)
        api_list = ", ".join(_toml_str(_glob_escape(a)) for a in apis)
        reason = f"triaged benign on {day:%Y-%m-%d}: {f.title}"
        parts.append(
            "\n[[suppress]]\n"
            f"principal = {_toml_str(_glob_escape(actor))}\n"
            f"account = {_toml_str(f.account_id)}\n"
            + (f"api = [{api_list}]\n" if apis else "")
            + f"reason = {_toml_str(reason)}\n"
            f"expires = {expires}\n"
        )
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the before/after table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="an ingested store of the benchmark (only read: runs use copies)")
    ap.add_argument("--logs", type=Path, default=DEFAULT_LOGS)
    ap.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    ap.add_argument("--budget", type=int, default=5, help="findings per day for recall@budget")
    ap.add_argument("--keep", type=Path, help="folder to keep the findings JSON lines and the rules file in")
    ap.add_argument(
        "--detectors",
        help="detectors to run, comma-separated (default: trailsight detect's; 'seeds': the nine seed rules)",
    )
    args = ap.parse_args(argv)
    truth = json.loads(args.truth.read_text(encoding="utf-8"))
    scorer = _scorer()
    tmp = tempfile.TemporaryDirectory(prefix="ts-feedback-")
    work = Path(tmp.name)
    keep = args.keep or work / "keep"
    keep.mkdir(parents=True, exist_ok=True)
    source = args.store
    if source is None or not StoreLayout(source).lake.is_dir():
        from trailsight.ingest import ingest

        source = source or work / "ingested"
        print(f"ingesting {args.logs} into {source} ...", file=sys.stderr)
        ingest([str(args.logs)], source, None)

    campaign_events = {e for c in truth["campaigns"] for e in c["event_ids"]}
    names: list[str] | None = None
    if args.detectors:
        names = list(SEEDS) if args.detectors == "seeds" else args.detectors.split(",")

    def is_campaign(f: Finding) -> bool:
        return not campaign_events.isdisjoint(f.event_ids)

    days = _days(truth)
    since, until = days[0][0], days[-1][1]

    # 1. No feedback: the whole test week in one run.
    week = Row("no feedback")
    started = time.perf_counter()
    store = _copy_store(source, work / "week")
    week.add(detect(store, since, until, None, names, save=True), is_campaign)
    week.seconds = time.perf_counter() - started
    print(f"no feedback: {len(week.raised)} findings ({week.seconds:.0f} s)", file=sys.stderr)

    # 2. The analyst, day by day, with feedback (row 2, "no feedback", is the same runs' findings
    #    with every status ignored: feedback changes statuses, never what detection finds).
    analyst = Row("analyst feedback, day by day")
    plain = Row("day by day, no feedback")
    store = _copy_store(source, work / "analyst")
    day1_dismissed: list[Finding] = []
    day1_found: list[Finding] = []
    started = time.perf_counter()
    for n, (d_since, d_until) in enumerate(days, start=1):
        found = detect(store, d_since, d_until, None, names, save=True)
        analyst.add(found, is_campaign)
        plain.add([_open(f) for f in found], is_campaign)
        if n == 1:
            day1_found = found
        for f in found:
            if f.status == "Suppressed":
                continue
            if is_campaign(f):
                set_status(store, f.id, "Malicious", f"bench analyst, day {n}: touches a campaign")
            else:
                set_status(store, f.id, "Dismissed", f"bench analyst, day {n}: benign")
                if n == 1:
                    day1_dismissed.append(f)
        print(
            f"day {n}: {len(found)} findings, {sum(f.status == 'Suppressed' for f in found)} suppressed",
            file=sys.stderr,
        )
    analyst.seconds = plain.seconds = time.perf_counter() - started

    # 3. A rules file written from day 1's dismissals, applied to days 2..7 (no feedback).
    rules_row = Row("suppression rules file")
    rules_dir = keep / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    rules_file = rules_dir / "suppressions.toml"
    rules_file.write_text(rules_from_dismissals(day1_dismissed, days[0][0]), encoding="utf-8")
    n_rules = len(load_rules(rules_file))  # a bad file fails here, with the rule named
    settings_file = rules_dir / "trailsight.toml"
    settings_file.write_text('[detect]\nsuppressions = "suppressions.toml"\n', encoding="utf-8")
    settings = Settings(path=settings_file, data={"detect": {"suppressions": "suppressions.toml"}})
    store = _copy_store(source, work / "rules")
    started = time.perf_counter()
    rules_row.add(day1_found, is_campaign)  # day 1 is before the rules: the analyst's day-1 run
    for d_since, d_until in days[1:]:
        rules_row.add(detect(store, d_since, d_until, settings, names, save=True), is_campaign)
    rules_row.seconds = time.perf_counter() - started

    # 4. Replay: the same verdicts, each applied as soon as its finding closes (not at the end of the
    #    day), on the day-by-day findings, with the rule a dismissal stands for (rule_from_finding).
    replay = Row("feedback as findings close")
    dismissed_so_far: list[Finding] = []
    ordered = sorted(plain.raised, key=lambda f: (f.first_seen, f.id))
    for d in range(len(days)):
        out = []
        for f in (g for g in ordered if _day_of(g, days) == d):
            earlier = [rule_from_finding(g, "replay") for g in dismissed_so_far if g.last_seen <= f.first_seen]
            (g,) = apply_suppressions([f], earlier)
            out.append(g)
            if g.status != "Suppressed" and not is_campaign(g):
                dismissed_so_far.append(g)
        replay.add(out, is_campaign)

    rows = [week, plain, analyst, rules_row, replay]
    ndays = len(days)
    header = (
        f"| {'run':30s} | campaigns | raised/day | suppressed/day | FP/day | recall@{args.budget}/day "
        "| traps fired | campaigns lost |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    base = _score(scorer, truth, week.raised, keep / "no-feedback.jsonl", args.budget)
    for i, row in enumerate(rows):
        slug = row.label.replace(" ", "-").replace(",", "")
        res = base if i == 0 else _score(scorer, truth, row.raised, keep / f"{slug}.jsonl", args.budget)
        everything = _score(scorer, truth, row.raised + row.suppressed, keep / f"{slug}-all.jsonl", args.budget)
        # Lost: found by this run's detection but only in findings a rule or verdict suppressed.
        lost = sorted(set(res["undetected_campaigns"]) - set(everything["undetected_campaigns"]))
        print(
            f"| {row.label:30s} | {res['campaigns_detected']:>4d}/{res['campaigns_total']:<4d} "
            f"| {len(row.raised) / ndays:10.1f} | {len(row.suppressed) / ndays:14.1f} "
            f"| {res['false_positive_findings_per_day']:6.1f} | {res['recall_at_budget']:14.2f} "
            f"| {res['traps_fired']:>5d}/{res['traps_total']:<5d} | {', '.join(lost) or 'none':14s} |",
            flush=True,
        )
    print(f"no feedback misses: {', '.join(base['undetected_campaigns']) or 'none'}")
    print()
    print("| test day | " + " | ".join(r.label for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for d in range(ndays):
        cells = []
        for row in rows:
            if row is week:
                day_fs = [f for f in week.raised if _day_of(f, days) == d]
                cells.append(f"{len(day_fs)} ({sum(1 for f in day_fs if not is_campaign(f))})")
            else:
                r, b, s = row.per_day[d]
                cells.append(f"{r} ({b})" + (f" +{s} suppressed" if s else ""))
        print(f"| {d + 1} | " + " | ".join(cells) + " |")
    print("(raised findings (of them touching no campaign); per day by first_seen for the week run)")
    print()
    print(f"rules file: {n_rules} rules from {len(day1_dismissed)} day-1 dismissals, kept in {rules_file}")
    store_arg = f" --store {args.store}" if args.store else ""
    dets = f" --detectors {args.detectors}" if args.detectors else ""
    print(f"reproduce: .venv/bin/python bench/feedback.py{store_arg} --budget {args.budget}{dets}")
    return 0


def _open(f: Finding) -> Finding:
    from dataclasses import replace

    return replace(f, status="Open")


def _day_of(f: Finding, days: Sequence[tuple[datetime, datetime]]) -> int:
    for i, (start, end) in enumerate(days):
        if start <= f.first_seen < end:
            return i
    return 0 if f.first_seen < days[0][0] else len(days) - 1


if __name__ == "__main__":
    sys.exit(main())
