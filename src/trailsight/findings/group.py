"""Group unusual events into findings: one principal, events closer than a gap (30 min).

Each group becomes a :class:`~trailsight.findings.model.Finding` with everything the events
themselves say — APIs by service with outcomes, networks, agents, keys, sessions, detectors,
reasons, timeline — and a score. :func:`trailsight.findings.describe.describe` adds the usual
behaviour and the explanation afterwards.

Finding score, in plain words: *what* — the distinct unusual APIs of the group, each at its
best API-novelty score times its risk factor, combine like independent evidence where the
strongest counts fully and each further one (up to four) counts half; *context* — the
strongest new network / agent / hour / volume signal among the events. Unusual APIs with no
unusual context keep 40 % of their weight (``1 − context_weight``), with full context all of
it; context without unusual APIs counts a third of the top API risk — or, where two or more
context signals corroborate each other on one event, that event's context score weighted by
its API risk. New dangerous calls from
a new place at an odd hour rank first; a team trying a new service from the office ranks low.
A group whose events are all *gated* (too little history) scores half its top API risk, and
says so.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from trailsight.findings.model import TACTICS, ApiCall, Finding, NetworkInfo, Reason, TimelineEntry

_MAX_REASONS = 20
_MAX_TIMELINE = 200


def finding_id(principal: str, account_id: str, first_event_id: str) -> str:
    """Stable id of a finding: a hash of (principal, account, first event id)."""
    digest = hashlib.sha256(f"{principal}\x1f{account_id}\x1f{first_event_id}".encode()).hexdigest()
    return f"ts-{digest[:24]}"


def split_groups(events: Sequence[Mapping[str, Any]], gap: timedelta) -> list[list[Mapping[str, Any]]]:
    """Split events into groups per (account, principal) wherever the gap between them exceeds ``gap``."""
    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for e in events:
        by_key[(str(e["account_id"]), str(e["principal"]))].append(e)
    groups: list[list[Mapping[str, Any]]] = []
    for key in sorted(by_key):
        rows = sorted(by_key[key], key=lambda e: (e["event_time"], e["event_id"]))
        current: list[Mapping[str, Any]] = []
        for e in rows:
            if current and e["event_time"] - current[-1]["event_time"] > gap:
                groups.append(current)
                current = []
            current.append(e)
        groups.append(current)
    return groups


def finding_score(events: Sequence[Mapping[str, Any]], context_weight: float = 0.6) -> float:
    """Score of a group of unusual events (see the module docstring)."""
    best: dict[str, float] = {}
    for e in events:
        api = str(e["api"])
        value = float(e["_what"]) * (0.35 + 0.65 * float(e["_risk"]))
        best[api] = max(best.get(api, 0.0), value)
    ranked = sorted(best.values(), reverse=True)
    keep = 1.0 - ranked[0]
    for s in ranked[1:5]:
        keep *= 1.0 - 0.5 * s
    what = 1.0 - keep
    context = max(float(e["_ctx"]) for e in events)
    top_risk = max(float(e["_risk"]) for e in events)
    # Corroborated context (two or more context signals on one event) stands on its own,
    # weighted by that event's API risk like an unusual API would be.
    corroborated = max(
        (float(e["_ctx"]) * (0.35 + 0.65 * float(e["_risk"])) for e in events if e.get("_corroborated")),
        default=0.0,
    )
    alone = max(context * 0.35 * top_risk, corroborated)
    score = what * ((1.0 - context_weight) + context_weight * context) + (1.0 - what) * alone
    return round(min(1.0, max(0.0, score)), 6)


def _most_common(values: Iterable[Any]) -> Any:
    counts = Counter(v for v in values if v not in (None, ""))
    return counts.most_common(1)[0][0] if counts else None


def _ranked(values: Iterable[Any]) -> list[str]:
    counts = Counter(str(v) for v in values if v not in (None, ""))
    return [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _apis(events: Sequence[Mapping[str, Any]]) -> list[ApiCall]:
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        key = (str(e.get("service") or ""), str(e["event_name"]))
        st = stats.setdefault(key, {"ok": 0, "bad": 0, "codes": Counter()})
        if e.get("error_code"):
            st["bad"] += 1
            st["codes"][str(e["error_code"])] += 1
        else:
            st["ok"] += 1
    return [
        ApiCall(
            service=s, event_name=n, success=v["ok"], failure=v["bad"], error_codes=dict(sorted(v["codes"].items()))
        )
        for (s, n), v in sorted(stats.items())
    ]


def _networks(events: Sequence[Mapping[str, Any]]) -> list[NetworkInfo]:
    by_ip: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("source_ip"):
            by_ip[str(e["source_ip"])].append(e)
    out = []
    for ip, rows in sorted(by_ip.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        r = rows[0]
        out.append(
            NetworkInfo(
                ip=ip,
                ip_kind=r.get("ip_kind"),
                asn=r.get("asn"),
                as_org=r.get("as_org"),
                city=r.get("city"),
                country=r.get("country"),
                events=len(rows),
            )
        )
    return out


def _reasons(events: Sequence[Mapping[str, Any]]) -> list[Reason]:
    seen: dict[tuple[str, str, str], Reason] = {}
    for e in events:
        for r in e["_reasons"]:
            key = (r.detector, r.code, r.message)
            if key not in seen or seen[key].score < r.score:
                seen[key] = r
    return sorted(seen.values(), key=lambda r: (-r.score, r.detector, r.code, r.message))[:_MAX_REASONS]


def _tactic(events: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """Tactic and technique of the highest-risk API among the events (ties: the higher score)."""
    best: Mapping[str, Any] | None = None
    for e in events:
        if not e.get("tactic"):
            continue
        key = (float(e.get("api_risk") or 0.0), float(e["_score"]))
        if best is None or key > (float(best.get("api_risk") or 0.0), float(best["_score"])):
            best = e
    if best is None:
        return None, None
    return str(best["tactic"]), best.get("technique")


def build_finding(events: Sequence[Mapping[str, Any]], context_weight: float = 0.6) -> Finding:
    """One finding from one group of unusual events.

    Each event is a feature row plus ``_score``, ``_what``, ``_ctx``, ``_risk``, ``_gated`` and
    ``_reasons`` (see :func:`trailsight.runner.score_table`).
    """
    from trailsight.findings import describe as d

    first, last = events[0], events[-1]
    principal, account = str(first["principal"]), str(first["account_id"])
    gated = all(bool(e["_gated"]) for e in events)
    score = finding_score(events, context_weight)
    if gated:
        score = round(0.5 * max(float(e["_risk"]) for e in events), 6)
    tactic, technique = _tactic(events)
    identity_type = str(_most_common(e.get("identity_type") for e in events) or "Unknown")
    actors = {str(e["actor"]) for e in events}
    actor = actors.pop() if len(actors) == 1 else principal
    detectors: dict[str, float] = {}
    for e in events:
        for r in e["_reasons"]:
            detectors[r.detector] = max(detectors.get(r.detector, 0.0), round(r.score * 100.0, 1))
    severity = d.severity_for(tactic, score)
    history_days = float(first.get("p_age_days") or 0.0)
    unusual_kinds = {r.code for e in events for r in e["_reasons"]}
    confidence = d.confidence_for(history_days, len(unusual_kinds), len(detectors), gated, score)
    name = d.short_name(principal)
    apis = _apis(events)
    top_api = max(events, key=lambda e: (float(e["_risk"]), float(e["_score"])))
    title = f"{name}: unusual {top_api['event_name']}" + (f" and {len(apis) - 1} more API(s)" if len(apis) > 1 else "")
    explanation = [f"{name} made {len(events)} unusual call(s) to {len(apis)} API(s)."]
    if gated:
        explanation.append(
            "Too little history to judge this principal normally (enough-data gate); "
            "raised because the APIs are high-risk."
        )
    explanation += [r.message for r in _reasons(events)[:5]]
    timeline = [
        TimelineEntry(
            event_id=str(e["event_id"]),
            event_time=e["event_time"],
            event_name=str(e["event_name"]),
            service=str(e.get("service") or ""),
            error_code=e.get("error_code"),
            source_ip=e.get("source_ip"),
            unusual=True,
            score=round(float(e["_score"]), 4),
        )
        for e in events[:_MAX_TIMELINE]
    ]
    return Finding(
        id=finding_id(principal, account, str(first["event_id"])),
        finding_type=d.finding_type_for(tactic, identity_type),
        title=title,
        principal=principal,
        actor=actor,
        account_id=account,
        identity_type=identity_type,
        first_seen=first["event_time"],
        last_seen=last["event_time"],
        count=len(events),
        score=score,
        risk_score=round(score * 100),
        severity=severity,
        severity_label=d.severity_label(severity),
        confidence=confidence,
        tactic=tactic,
        tactic_id=TACTICS.get(tactic) if tactic else None,
        technique=technique,
        event_ids=[str(e["event_id"]) for e in events],
        reasons=_reasons(events),
        anomalous_apis=apis,
        networks=_networks(events),
        user_agents=_ranked(e.get("user_agent") for e in events),
        access_keys=_ranked(e.get("access_key_id") for e in events),
        session_names=_ranked(e.get("session_name") for e in events),
        explanation=explanation,
        timeline=timeline,
        detectors=dict(sorted(detectors.items())),
        gated=gated,
    )


def group_findings(events: Sequence[Mapping[str, Any]], gap: timedelta, context_weight: float = 0.6) -> list[Finding]:
    """Findings from unusual events, best first (score, then first seen, then id)."""
    findings = [build_finding(g, context_weight) for g in split_groups(events, gap) if g]
    return sorted(findings, key=lambda f: (-f.score, f.first_seen, f.id))
