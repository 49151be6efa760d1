"""What the calls did, and other new signals, each on its own, on the labelled dev benchmark's test week.

    .venv/bin/python bench/effects_alone.py --store S [--truth FILE] [--network | --detectors A,B]

Every call of the test week whose request an effect check reads (``effects.csv``) is judged as
detection judges it — outside accounts as of the call, from the store's history — and the
succeeded effects are grouped per principal wherever 30 minutes pass between them, as findings
are. Prints how many campaigns those groups touch and how many groups touch none (false
positives of the signal alone), by effect kind. truth.json is read here only to score.

``--network`` does the same for the network signals: the findings of ``unusual_network`` and
``geo_velocity`` run alone (every finding, no alert threshold) that carry a new rented network
class (``new_rented_network_for_principal``) or an impossible travel (``impossible_travel``).

``--detectors`` does the same for detectors (the sign-in and credential signals): the test
week's as-of features are computed from the store (the Ibis expressions), each named detector
scores them, and the events it fires on are grouped per principal with the same 30-minute gap;
the table gives, per reason code, the campaigns touched and the benign groups.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from trailsight.config import Settings, load_settings
from trailsight.detectors.base import Detector
from trailsight.detectors.registry import create
from trailsight.enrich.effects import EffectContext, effects_of
from trailsight.features.asof import build_feature_table
from trailsight.features.source import connect, open_events, quiet_ibis
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
    ap.add_argument("--detectors", help="comma-separated detectors to measure alone instead of the effects")
    ap.add_argument("--config", type=Path, help="a trailsight.toml whose [detectors.<name>] settings to use")
    args = ap.parse_args(argv)
    truth = json.loads(args.truth.read_text(encoding="utf-8"))
    since, until = _iso(truth["test_start"]), _iso(truth["test_end"])
    if args.network:
        return network_alone(args.store, truth, since, until)
    if args.detectors:
        settings = load_settings(args.config) if args.config else None
        return detectors_alone(args.store, truth, since, until, args.detectors.split(","), settings)
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
    by_principal: dict[str, list[tuple[datetime, str, set[str]]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["event_time"], r["event_id"])):
        known = frozenset(a for a, when in history.items() if when < row["event_time"])
        kinds = {e.kind for e in effects_of(call_of(row), EffectContext(known_accounts=known)) if e.succeeded}
        if kinds:
            by_principal[str(row["principal"])].append((row["event_time"], str(row["event_id"]), kinds))
    _report(truth, since, until, by_principal, "effect kind")
    return 0


Item = tuple[datetime, str, set[str]]


def week_features(store: Path, since: datetime, until: datetime) -> pa.Table:
    """The as-of features of ``[since, until)`` from the store, as the Ibis expressions compute them."""
    with quiet_ibis():
        con = connect()
        events = open_events(con, StoreLayout(store), since, until, 90)
        table: pa.Table = con.to_pyarrow(build_feature_table(events, since, until))
    return table


def fired_groups(features: pa.Table, detector: Detector) -> dict[str, list[Item]]:
    """The events ``detector`` fires on, per principal, with their reason codes."""
    scores = detector.score(features)
    by_principal: dict[str, list[Item]] = defaultdict(list)
    times, principals = features["event_time"].to_pylist(), features["principal"].to_pylist()
    for i in (int(j) for j in scores.fired.nonzero()[0]):
        codes = {r.code for r in scores.reasons[i]}
        by_principal[str(principals[i])].append((times[i], str(scores.event_ids[i]), codes))
    return by_principal


def detectors_alone(
    store: Path, truth: dict[str, Any], since: datetime, until: datetime, names: list[str], settings: Settings | None
) -> int:
    """Print, per detector, the campaigns its fired events touch and its benign groups."""
    features = week_features(store, since, until)
    for detector in create(names, settings):
        groups = fired_groups(features, detector)
        print(f"## {detector.name}: {sum(len(v) for v in groups.values())} events fired")
        _report(truth, since, until, groups, "reason")
        print()
    return 0


def tally(
    truth: dict[str, Any], by_principal: dict[str, list[Item]]
) -> tuple[dict[str, set[str]], dict[str, int], int]:
    """Group each principal's items with the findings' gap.

    Returns (kinds per campaign touched, benign groups per kind, benign groups).
    """
    campaign = {e: c["id"] for c in truth["campaigns"] for e in c["event_ids"]}
    groups: list[list[Item]] = []
    for items in by_principal.values():
        current: list[Item] = []
        for item in sorted(items, key=lambda t: (t[0], t[1])):
            if current and item[0] - current[-1][0] > GAP:
                groups.append(current)
                current = []
            current.append(item)
        if current:
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
    return touched, benign, false_positives


def _report(
    truth: dict[str, Any], since: datetime, until: datetime, by_principal: dict[str, list[Item]], what: str
) -> None:
    """Print the campaigns the items touch and the benign groups, by kind."""
    touched, benign, false_positives = tally(truth, by_principal)
    days = max(1, round((until - since).total_seconds() / 86400))
    print(f"campaigns touched: {len(touched)} of {len(truth['campaigns'])}")
    print(f"benign groups: {false_positives} ({false_positives / days:.2f} a day)")
    print(f"| {what} | campaigns touched | benign groups |")
    print("|---|---|---|")
    for kind in sorted(set(benign) | {k for ks in touched.values() for k in ks}):
        n = sum(1 for ks in touched.values() if kind in ks)
        print(f"| `{kind}` | {n} | {benign.get(kind, 0)} |")


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
