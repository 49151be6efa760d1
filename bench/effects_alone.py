"""What the calls did, as a signal on its own, on the labelled dev benchmark's test week.

    .venv/bin/python bench/effects_alone.py --store S [--truth FILE] [--network]

Every call of the test week whose request an effect check reads (``effects.csv``) is judged as
detection judges it — outside accounts as of the call, from the store's history — and the
succeeded effects are grouped per principal wherever 30 minutes pass between them, as findings
are. Prints how many campaigns those groups touch and how many groups touch none (false
positives of the signal alone), by effect kind. truth.json is read here only to score.

``--network`` does the same for the network signals: the findings of ``unusual_network`` and
``geo_velocity`` run alone (every finding, no alert threshold) that carry a new rented network
class (``new_rented_network_for_principal``) or an impossible travel (``impossible_travel``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from trailsight.enrich.effects import EffectContext, effects_of
from trailsight.features.source import connect, open_events
from trailsight.findings.touched import account_history, call_of, watched_names
from trailsight.store.layout import StoreLayout

#: The dev benchmark's truth in the shared folder beside the repository (``../shared``).
DEFAULT_TRUTH = Path(__file__).resolve().parents[2] / "shared" / "bench" / "dev" / "truth.json"
GAP = timedelta(minutes=30)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main(argv: list[str] | None = None) -> int:
    """Print the campaigns the effects alone touch and the benign groups they raise."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="a store with the dev benchmark ingested")
    ap.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    ap.add_argument("--network", action="store_true", help="the network-class and geo-velocity signals instead")
    args = ap.parse_args(argv)
    truth = json.loads(args.truth.read_text(encoding="utf-8"))
    since, until = _iso(truth["test_start"]), _iso(truth["test_end"])
    if args.network:
        return network_alone(args.store, truth, since, until)
    con = connect()
    open_events(con, StoreLayout(args.store), since, until, 90)
    names = watched_names()
    rows: list[dict[str, Any]] = (
        con.con.sql(
            "SELECT event_id, event_time, event_source, event_name, request_parameters, raw, error_code, "
            "account_id, principal, identity_type, session_name FROM events "
            f"WHERE event_time >= ? AND event_time < ? AND regexp_replace(event_name, '20[0-9]{{6}}(v[0-9]+)?$', '') "
            f"IN ({', '.join('?' for _ in names)})",
            params=[since, until, *names],
        )
        .to_arrow_table()
        .to_pylist()
    )
    history = account_history(con, "events", until)
    campaign = {e: c["id"] for c in truth["campaigns"] for e in c["event_ids"]}
    by_principal: dict[str, list[tuple[datetime, str, set[str]]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["event_time"], r["event_id"])):
        known = frozenset(a for a, when in history.items() if when < row["event_time"])
        kinds = {e.kind for e in effects_of(call_of(row), EffectContext(known_accounts=known)) if e.succeeded}
        if kinds:
            by_principal[str(row["principal"])].append((row["event_time"], str(row["event_id"]), kinds))
    groups: list[list[tuple[datetime, str, set[str]]]] = []
    for items in by_principal.values():
        current: list[tuple[datetime, str, set[str]]] = []
        for item in items:
            if current and item[0] - current[-1][0] > GAP:
                groups.append(current)
                current = []
            current.append(item)
        groups.append(current)
    touched: dict[str, set[str]] = defaultdict(set)
    benign: dict[str, int] = defaultdict(int)
    false_positives = 0
    for group in groups:
        kinds = set().union(*(k for _, _, k in group))
        hit = {campaign[e] for _, e, _ in group if e in campaign}
        for c in hit:
            touched[c] |= kinds
        if not hit:
            false_positives += 1
            for k in kinds:
                benign[k] += 1
    days = max(1, round((until - since).total_seconds() / 86400))
    print(f"campaigns touched: {len(touched)} of {len(truth['campaigns'])}")
    print(f"benign groups: {false_positives} ({false_positives / days:.2f} a day)")
    print("| effect kind | campaigns touched | benign groups |")
    print("|---|---|---|")
    for kind in sorted(set(benign) | {k for ks in touched.values() for k in ks}):
        n = sum(1 for ks in touched.values() if kind in ks)
        print(f"| `{kind}` | {n} | {benign.get(kind, 0)} |")
    return 0


#: Network signals: (detector, reason code) of each.
NETWORK_SIGNALS = (
    ("unusual_network", "new_rented_network_for_principal"),
    ("geo_velocity", "impossible_travel"),
)


def network_alone(store: Path, truth: dict[str, Any], since: datetime, until: datetime) -> int:
    """Print the campaigns each network signal touches alone and the benign findings it raises."""
    from trailsight.pipeline import detect

    campaign = {e: c["id"] for c in truth["campaigns"] for e in c["event_ids"]}
    days = max(1, round((until - since).total_seconds() / 86400))
    print("| signal | campaigns touched | benign findings | benign a day |")
    print("|---|---|---|---|")
    for detector, code in NETWORK_SIGNALS:
        findings = detect(store, since, until, None, [detector], save=False, describe=False, min_score=0.0)
        kept = [f for f in findings if any(r.code == code for r in f.reasons)]
        touched = {campaign[e] for f in kept for e in f.event_ids if e in campaign}
        benign = sum(1 for f in kept if not any(e in campaign for e in f.event_ids))
        of = len(truth["campaigns"])
        print(f"| `{detector}` `{code}` | {len(touched)} of {of} | {benign} | {benign / days:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
