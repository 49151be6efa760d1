"""Group unusual events into findings: one principal, events closer than a gap (30 min).

Each group becomes a :class:`~trailsight.finding.Finding` with everything the events
themselves say — APIs by service with outcomes, networks, agents, keys, sessions, detectors,
reasons, timeline — and a score. :func:`trailsight.findings.describe.describe` adds the usual
behaviour and the explanation afterwards.

The finding's score, severity and confidence come from the scoring policy
(:mod:`trailsight.scoring.policy`).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from trailsight.finding import TACTICS, ApiCall, Finding, NetworkInfo, Reason, TimelineEntry, UnusualEvent
from trailsight.findings.names import finding_type_for, person_name
from trailsight.scoring.policy import confidence_for, finding_score, gated_score, severity_for, severity_label

_MAX_REASONS = 20
_MAX_TIMELINE = 200


def finding_id(principal: str, account_id: str, first_event_id: str) -> str:
    """Stable id of a finding: a hash of (principal, account, first event id)."""
    digest = hashlib.sha256(f"{principal}\x1f{account_id}\x1f{first_event_id}".encode()).hexdigest()
    return f"ts-{digest[:24]}"


def split_groups(events: Sequence[UnusualEvent], gap: timedelta) -> list[list[UnusualEvent]]:
    """Split events into groups per (account, principal) wherever the gap between them exceeds ``gap``."""
    by_key: dict[tuple[str, str], list[UnusualEvent]] = defaultdict(list)
    for e in events:
        by_key[(e.account_id, e.principal)].append(e)
    groups: list[list[UnusualEvent]] = []
    for key in sorted(by_key):
        rows = sorted(by_key[key], key=lambda e: (e.event_time, e.event_id))
        current: list[UnusualEvent] = []
        for e in rows:
            if current and e.event_time - current[-1].event_time > gap:
                groups.append(current)
                current = []
            current.append(e)
        groups.append(current)
    return groups


def _most_common(values: Iterable[Any]) -> Any:
    counts = Counter(v for v in values if v not in (None, ""))
    return counts.most_common(1)[0][0] if counts else None


def _ranked(values: Iterable[Any]) -> list[str]:
    counts = Counter(str(v) for v in values if v not in (None, ""))
    return [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _apis(events: Sequence[UnusualEvent]) -> list[ApiCall]:
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        key = (str(e.row.get("service") or ""), str(e.row["event_name"]))
        st = stats.setdefault(key, {"ok": 0, "bad": 0, "codes": Counter()})
        if e.row.get("error_code"):
            st["bad"] += 1
            st["codes"][str(e.row["error_code"])] += 1
        else:
            st["ok"] += 1
    return [
        ApiCall(
            service=s, event_name=n, success=v["ok"], failure=v["bad"], error_codes=dict(sorted(v["codes"].items()))
        )
        for (s, n), v in sorted(stats.items())
    ]


def _networks(events: Sequence[UnusualEvent]) -> list[NetworkInfo]:
    by_ip: dict[str, list[UnusualEvent]] = defaultdict(list)
    for e in events:
        if e.row.get("source_ip"):
            by_ip[str(e.row["source_ip"])].append(e)
    out = []
    for ip, rows in sorted(by_ip.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        r = rows[0]
        out.append(
            NetworkInfo(
                ip=ip,
                ip_kind=r.row.get("ip_kind"),
                net_class=r.row.get("net_class"),
                asn=r.row.get("asn"),
                as_org=r.row.get("as_org"),
                city=r.row.get("city"),
                country=r.row.get("country"),
                events=len(rows),
            )
        )
    return out


def _reasons(events: Sequence[UnusualEvent]) -> list[Reason]:
    seen: dict[tuple[str, str, str], Reason] = {}
    for e in events:
        for r in e.reasons:
            key = (r.detector, r.code, r.message)
            if key not in seen or seen[key].score < r.score:
                seen[key] = r
    return sorted(seen.values(), key=lambda r: (-r.score, r.detector, r.code, r.message))[:_MAX_REASONS]


def _tactic(events: Sequence[UnusualEvent]) -> tuple[str | None, str | None]:
    """Tactic and technique of the highest-risk API among the events (ties: the higher score)."""
    best: UnusualEvent | None = None
    for e in events:
        if not e.row.get("tactic"):
            continue
        key = (float(e.row.get("api_risk") or 0.0), e.score)
        if best is None or key > (float(best.row.get("api_risk") or 0.0), best.score):
            best = e
    if best is None:
        return None, None
    return str(best.row["tactic"]), best.row.get("technique")


def build_finding(events: Sequence[UnusualEvent], context_weight: float = 0.6) -> Finding:
    """One finding from one group of unusual events (:func:`trailsight.scoring.events.unusual_events`)."""
    first, last = events[0], events[-1]
    principal, account = first.principal, first.account_id
    gated = all(e.gated for e in events)
    score = gated_score(events) if gated else finding_score(events, context_weight)
    tactic, technique = _tactic(events)
    identity_type = str(_most_common(e.row.get("identity_type") for e in events) or "Unknown")
    actors = {str(e.row["actor"]) for e in events}
    actor = actors.pop() if len(actors) == 1 else principal
    detectors: dict[str, float] = {}
    for e in events:
        for r in e.reasons:
            detectors[r.detector] = max(detectors.get(r.detector, 0.0), round(r.score * 100.0, 1))
    severity = severity_for(tactic, score)
    # The history a finding is judged against: the principal's; the root user's is its account's
    # (root is the account's own identity, and its rare use is judged against the account's history).
    age_of = "a_age_days" if identity_type == "Root" else "p_age_days"
    history_days = float(first.row.get(age_of) or 0.0)
    unusual_kinds = {r.code for e in events for r in e.reasons}
    confidence = confidence_for(history_days, len(unusual_kinds), len(detectors), gated, score)
    name = person_name(principal, actor)
    apis = _apis(events)
    top_api = max(events, key=lambda e: (e.risk, e.score))
    title = f"{name}: unusual {top_api.row['event_name']}" + (
        f" and {len(apis) - 1} more API(s)" if len(apis) > 1 else ""
    )
    explanation = [f"{name} made {len(events)} unusual call(s) to {len(apis)} API(s)."]
    if gated:
        explanation.append(
            "Too little history to judge this principal normally (enough-data gate); "
            "raised because the APIs are high-risk."
        )
    explanation += [r.message for r in _reasons(events)[:5]]
    timeline = [
        TimelineEntry(
            event_id=e.event_id,
            event_time=e.event_time,
            event_name=str(e.row["event_name"]),
            service=str(e.row.get("service") or ""),
            error_code=e.row.get("error_code"),
            source_ip=e.row.get("source_ip"),
            unusual=True,
            score=round(e.score, 4),
        )
        for e in events[:_MAX_TIMELINE]
    ]
    return Finding(
        id=finding_id(principal, account, first.event_id),
        finding_type=finding_type_for(tactic, identity_type),
        title=title,
        principal=principal,
        actor=actor,
        account_id=account,
        identity_type=identity_type,
        first_seen=first.event_time,
        last_seen=last.event_time,
        count=len(events),
        score=score,
        risk_score=round(score * 100),
        severity=severity,
        severity_label=severity_label(severity),
        confidence=confidence,
        tactic=tactic,
        tactic_id=TACTICS.get(tactic) if tactic else None,
        technique=technique,
        event_ids=[e.event_id for e in events],
        reasons=_reasons(events),
        anomalous_apis=apis,
        networks=_networks(events),
        user_agents=_ranked(e.row.get("user_agent") for e in events),
        access_keys=_ranked(e.row.get("access_key_id") for e in events),
        session_names=_ranked(e.row.get("session_name") for e in events),
        explanation=explanation,
        timeline=timeline,
        detectors=dict(sorted(detectors.items())),
        gated=gated,
    )


def group_findings(events: Sequence[UnusualEvent], gap: timedelta, context_weight: float = 0.6) -> list[Finding]:
    """Findings from unusual events, best first (score, then first seen, then id)."""
    findings = [build_finding(g, context_weight) for g in split_groups(events, gap) if g]
    return sorted(findings, key=lambda f: (-f.score, f.first_seen, f.id))
