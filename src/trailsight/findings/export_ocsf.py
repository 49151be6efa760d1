"""A finding as an OCSF 1.7.0 Detection Finding (class 2004), validated with ``pydantic-ocsf``.

Mapping (trailsight → OCSF):

* ``activity_id`` 1 Create, ``category_uid`` 2 Findings, ``class_uid`` 2004, ``type_uid`` 200401;
  ``time`` = last seen, ``start_time`` / ``end_time`` = first / last seen, ``count`` = events;
* ``severity_id`` from GuardDuty's bands: Low (1–3.9) → 2 Low, Medium (4–6.9) → 3 Medium,
  High (7–8.9) → 4 High, ≥ 9 → 5 Critical; ``confidence_id`` Low/Medium/High → 1/2/3,
  ``confidence_score`` = score × 100; ``risk_score`` = risk score, ``risk_level_id`` from the
  severity label; ``status_id`` from the analyst status (Open → New, Acknowledged → In Progress,
  Suppressed → Suppressed, Dismissed → Resolved, Malicious → Other "Malicious");
* ``finding_info``: uid, title, desc (the explanation), types (the finding type), first/last seen,
  ``related_events`` (one per event id, with its API and time where the timeline has it),
  ``analytic`` (trailsight's behavioural analytic) and ``related_analytics`` (the detectors that
  fired, with their scores), ``attacks`` (tactic, technique / sub-technique with ATT&CK names:
  the finding's, then those of what its calls did);
* ``anomaly_analyses``: one per unusual attribute — the observed value as the anomaly, the
  principal's and the account's usual values (with counts) as baselines; detector reasons when
  the finding has no attribute breakdown;
* ``evidences``: the principal as ``actor.user`` (account, access key), one evidence per anomalous
  API (``api.operation`` / ``api.service``, successes, failures, error codes) and one per source
  network (``src_endpoint`` ip, location, autonomous system);
* ``observables`` for SIEM pivots (IPs, user name, account, user agents, access keys),
  ``resources`` (the principal, then the resources its calls touched, with their kind and how
  many calls touched each), ``remediation.desc`` (the next steps), ``cloud`` (provider AWS,
  account — the cloud profile),
  ``metadata.product`` trailsight / trailsight, ``unmapped`` for what OCSF has no place for
  (score, actor, detectors' scores, gated, what the calls did and the counterparties).
"""

from __future__ import annotations

from typing import Any

from ocsf.v1_7_0.events import DetectionFinding
from ocsf.v1_7_0.objects import Cloud

import trailsight
from trailsight.enrich.geo import GEO_ATTRIBUTION
from trailsight.enrich.network import parse_ip
from trailsight.finding import Finding, UnusualAttribute
from trailsight.findings.export_common import (
    PRODUCT_NAME,
    VENDOR_NAME,
    attack_name,
    attack_version,
    clean_tree,
    epoch_ms,
    sentences,
    tactic_id,
)
from trailsight.findings.names import person_name, principal_name

OCSF_VERSION = "1.7.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
TYPE_UID = CLASS_UID * 100 + ACTIVITY_CREATE

_CONFIDENCE_ID = {"Low": 1, "Medium": 2, "High": 3}
_RISK_LEVEL_ID = {"Low": 1, "Medium": 2, "High": 3, "Critical": 4}
_STATUS = {"Open": 1, "Acknowledged": 2, "Suppressed": 3, "Dismissed": 4}
_USER_TYPE = {"IAMUser": 1, "Root": 2, "AWSService": 4}
_OBS_IP, _OBS_USER, _OBS_AGENT, _OBS_CREDENTIAL, _OBS_ACCOUNT = 2, 4, 16, 19, 35


def severity_id(severity: float) -> int:
    """OCSF severity id of a GuardDuty-band severity."""
    if severity <= 0:
        return 0
    if severity < 4:
        return 2
    if severity < 7:
        return 3
    if severity < 9:
        return 4
    return 5


_SEVERITY_NAME = {0: "Unknown", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}


def _attack(tactic: str | None, tactic_uid: str | None, technique: str | None) -> dict[str, Any] | None:
    if not tactic and not technique:
        return None
    attack: dict[str, Any] = {"version": attack_version()}
    tid = tactic_id(tactic, tactic_uid)
    if tid:
        attack["tactic"] = {"uid": tid, "name": attack_name(tid) or tactic}
    if technique:
        parent = technique.split(".", 1)[0]
        attack["technique"] = {"uid": parent, "name": attack_name(parent)}
        if parent != technique:
            attack["sub_technique"] = {"uid": technique, "name": attack_name(technique)}
    return attack


def _attacks(f: Finding) -> list[dict[str, Any]]:
    """The finding's tactic and technique, then those of what its calls did (each once)."""
    pairs = [(f.tactic, f.tactic_id, f.technique)] + [(e.tactic, None, e.technique) for e in f.effects]
    out: list[dict[str, Any]] = []
    seen: set[tuple[str | None, str | None]] = set()
    for tactic, tactic_uid, technique in pairs:
        attack = _attack(tactic, tactic_uid, technique)
        if attack is not None and (tactic, technique) not in seen:
            seen.add((tactic, technique))
            out.append(attack)
    return out


def _user(f: Finding) -> dict[str, Any]:
    user: dict[str, Any] = {
        "uid": f.principal,
        # the person first behind a shared role (``ava.costa@… via AWSReservedSSO_DeveloperAccess``)
        "name": person_name(f.principal, f.actor) if f.actor != f.principal else principal_name(f.principal),
        "type_id": _USER_TYPE.get(f.identity_type, 99),
        "account": {"uid": f.account_id, "type_id": 10},  # 10: AWS Account
    }
    if user["type_id"] == 99:
        user["type"] = f.identity_type
    if f.access_keys:
        user["credential_uid"] = f.access_keys[0]
    return user


def _endpoint(ip: str, kind: str | None) -> dict[str, Any]:
    if parse_ip(ip) is not None:
        return {"ip": ip}
    # service host names (lambda.amazonaws.com) and "AWS Internal" are not addresses
    return {"svc_name": ip} if kind == "aws-service" else {"name": ip}


def _evidences(f: Finding) -> list[dict[str, Any]]:
    actor = {"user": _user(f)}
    if f.session_names:
        actor["session"] = {"issuer": f.principal, "uid": f.session_names[0]}
    evidences: list[dict[str, Any]] = []
    for call in f.anomalous_apis:
        api: dict[str, Any] = {"operation": call.event_name, "service": {"name": call.service}}
        if call.error_codes:
            top = max(call.error_codes.items(), key=lambda kv: kv[1])[0]
            api["response"] = {"error": top}
        evidences.append(
            {
                "name": f"{call.service}:{call.event_name}",
                "actor": actor,
                "api": api,
                "data": {"success": call.success, "failure": call.failure, "error_codes": dict(call.error_codes)},
            }
        )
    for net in f.networks:
        endpoint = _endpoint(net.ip, net.ip_kind)
        if net.city or net.country:
            endpoint["location"] = {k: v for k, v in (("city", net.city), ("country", net.country)) if v}
        if net.asn is not None or net.as_org:
            endpoint["autonomous_system"] = {
                k: v for k, v in (("number", net.asn), ("name", net.as_org)) if v is not None
            }
        evidences.append(
            {
                "name": "source network",
                "actor": actor,
                "src_endpoint": endpoint,
                "data": {"events": net.events, "ip_kind": net.ip_kind, "net_class": net.net_class},
            }
        )
    evidences += _story_evidences(f)
    if not evidences:
        evidences.append({"name": "principal", "actor": actor})
    return evidences


def _story_evidences(f: Finding) -> list[dict[str, Any]]:
    """One evidence per step of an attack story: who, in which account, what, when, its tactic and events."""
    out: list[dict[str, Any]] = []
    for i, step in enumerate(f.steps, start=1):
        user: dict[str, Any] = {
            "uid": step.actor,
            "name": principal_name(step.principal),
            "account": {"uid": step.account_id, "type_id": 10},
        }
        evidence: dict[str, Any] = {
            "name": f"step {i}: {step.what}"[:512],
            "actor": {"user": user},
            "data": {
                "time": epoch_ms(step.time),
                "kind": step.kind,
                "tactic": step.tactic,
                "finding_uid": step.finding_id,
                "event_uids": step.event_ids[:50],
                "network": step.network,
            },
        }
        ip = (step.network or "").split(" ", 1)[0]
        if ip and parse_ip(ip) is not None:
            evidence["src_endpoint"] = {"ip": ip}
        out.append(evidence)
    return out


def _observations(values: list[tuple[str, int | None]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for value, count in values:
        obs: dict[str, Any] = {"value": value}
        if count is not None:
            obs["count"] = count
        out.append(obs)
    return out


def _anomaly(f: Finding, u: UnusualAttribute) -> dict[str, Any]:
    targets = [{"name": f.principal, "type": "principal"}] if u.unusual_for_principal else []
    if u.unusual_for_account:
        targets.append({"name": f.account_id, "type": "account"})
    if not targets:
        targets.append({"name": f.principal, "type": "principal"})
    where = " and ".join(t["type"] for t in targets)
    analysis: dict[str, Any] = {
        "analysis_targets": targets,
        "anomalies": [
            {
                "observation_parameter": u.attribute,
                "observation_type": f"unusual for the {where}",
                "observations": _observations([(u.value, None)]),
            }
        ],
    }
    baselines = []
    if u.principal_usual:
        baselines.append(
            {
                "observation_parameter": u.attribute,
                "observation_type": "usual for the principal",
                "observations": _observations([(e.value, e.count) for e in u.principal_usual]),
                "observed_pattern": ", ".join(f"{e.value} ({e.frequency})" for e in u.principal_usual[:10]),
            }
        )
    if u.account_usual:
        baselines.append(
            {
                "observation_parameter": u.attribute,
                "observation_type": "usual for the account",
                "observations": _observations([(e.value, e.count) for e in u.account_usual]),
                "observed_pattern": ", ".join(f"{e.value} ({e.frequency})" for e in u.account_usual[:10]),
            }
        )
    if baselines:
        analysis["baselines"] = baselines
    return analysis


def _anomaly_analyses(f: Finding) -> list[dict[str, Any]]:
    if f.unusual:
        return [_anomaly(f, u) for u in f.unusual]
    return [
        {
            "analysis_targets": [{"name": f.principal, "type": "principal"}],
            "anomalies": [
                {
                    "observation_parameter": r.code,
                    "observation_type": r.detector,
                    "observations": _observations([(r.message, None)]),
                }
            ],
        }
        for r in f.reasons
    ]


def _related_events(f: Finding) -> list[dict[str, Any]]:
    timeline = {t.event_id: t for t in f.timeline}
    events: list[dict[str, Any]] = []
    for event_id in f.event_ids:
        event: dict[str, Any] = {"uid": event_id, "product": {"name": "AWS CloudTrail", "vendor_name": "AWS"}}
        entry = timeline.get(event_id)
        if entry is not None:
            event["title"] = f"{entry.service}:{entry.event_name}"
            event["first_seen_time"] = epoch_ms(entry.event_time)
            event["last_seen_time"] = epoch_ms(entry.event_time)
            if entry.unusual:
                event["tags"] = [{"name": "unusual", "value": "true"}]
        events.append(event)
    return events


def _touched(f: Finding) -> list[dict[str, Any]]:
    """The resources the finding's calls acted on, after the principal."""
    return [
        {
            "uid": r.id,
            "name": principal_name(r.id) or r.id,
            "type": r.type,
            "cloud_partition": "aws",
            "data": {"calls": r.events},
        }
        for r in f.resources
    ]


def _observables(f: Finding) -> list[dict[str, Any]]:
    obs: list[dict[str, Any]] = [
        {"name": "evidences.actor.user.uid", "type_id": _OBS_USER, "value": f.principal},
        {"name": "cloud.account.uid", "type_id": _OBS_ACCOUNT, "value": f.account_id},
    ]
    obs += [
        {"name": "evidences.src_endpoint.ip", "type_id": _OBS_IP, "value": n.ip}
        for n in f.networks
        if parse_ip(n.ip) is not None
    ]
    obs += [{"name": "user_agent", "type_id": _OBS_AGENT, "value": ua} for ua in f.user_agents]
    obs += [
        {"name": "evidences.actor.user.credential_uid", "type_id": _OBS_CREDENTIAL, "value": k} for k in f.access_keys
    ]
    return obs


_STATUS_NAME = {1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved"}


def _status(f: Finding) -> tuple[int, str]:
    status_id = _STATUS.get(f.status, 99)
    return status_id, _STATUS_NAME.get(status_id, f.status)


def to_ocsf(f: Finding) -> dict[str, Any]:
    """The finding as an OCSF 1.7.0 Detection Finding, validated; JSON-ready (``None`` left out)."""
    sev = severity_id(f.severity)
    status_id, status = _status(f)
    cloud = Cloud.model_validate({"provider": "AWS", "account": {"uid": f.account_id, "type_id": 10}})
    finding_info: dict[str, Any] = {
        "uid": f.id,
        "title": f.title,
        "desc": sentences(f.explanation) or f.title,
        "types": [f.finding_type],
        "first_seen_time": epoch_ms(f.first_seen),
        "last_seen_time": epoch_ms(f.last_seen),
        "data_sources": ["AWS CloudTrail"],
        "related_events": _related_events(f),
        "related_events_count": len(f.event_ids),
        "analytic": {
            "name": "trailsight behavioural anomaly",
            "uid": "trailsight.anomalous-behavior",
            "type_id": 2,  # Behavioral
            "desc": "Events unusual for the principal and its account, learned from its own history.",
            "version": trailsight.__version__,
            "related_analytics": [
                {"name": name, "uid": f"trailsight.detectors.{name}", "type_id": 3, "desc": f"anomaly score {score:g}"}
                for name, score in sorted(f.detectors.items())
            ],
        },
        "attacks": _attacks(f) or None,
        "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME},
    }
    event: dict[str, Any] = {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": TYPE_UID,
        "type_name": "Detection Finding: Create",
        "time": epoch_ms(f.last_seen),
        "start_time": epoch_ms(f.first_seen),
        "end_time": epoch_ms(f.last_seen),
        "count": f.count,
        "message": f.title,
        "severity_id": sev,
        "severity": _SEVERITY_NAME.get(sev, "Other"),
        "confidence_id": _CONFIDENCE_ID.get(f.confidence, 0),
        "confidence": f.confidence,
        "confidence_score": max(0, min(100, round(f.score * 100))),
        "risk_score": f.risk_score,
        "risk_level_id": _RISK_LEVEL_ID.get(f.severity_label, 99),
        "risk_level": f.severity_label,
        "status_id": status_id,
        "status": status,
        "status_detail": f.status,
        "is_alert": f.status not in ("Dismissed", "Suppressed"),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f.id,
            "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": trailsight.__version__},
            "profiles": ["cloud"],
            "log_name": "findings",
        },
        "finding_info": finding_info,
        "anomaly_analyses": _anomaly_analyses(f) or None,
        "evidences": _evidences(f),
        "observables": _observables(f),
        "resources": [
            {
                "uid": f.principal,
                "name": principal_name(f.principal),
                "type": f.identity_type,
                "cloud_partition": "aws",
                "owner": {"uid": f.account_id, "account": {"uid": f.account_id, "type_id": 10}},
            },
            *_touched(f),
        ],
        "remediation": {"desc": " ".join(f.next_steps)} if f.next_steps else None,
        "unmapped": {
            "trailsight": {
                "actor": f.actor,
                "score": f.score,
                "severity": f.severity,
                "detectors": dict(f.detectors),
                "effects": [
                    {"kind": e.kind, "description": e.description, "succeeded": e.succeeded, "event_id": e.event_id}
                    for e in f.effects
                ]
                or None,
                "counterparties": [{"kind": p.kind, "id": p.id, "via": p.via} for p in f.counterparties] or None,
                "gated": f.gated,
                **({"geo_attribution": GEO_ATTRIBUTION} if any(n.country or n.city for n in f.networks) else {}),
            }
        },
    }
    model = DetectionFinding.model_validate(clean_tree(event))
    out: dict[str, Any] = model.model_dump(mode="json", exclude_none=True, by_alias=True)
    out["cloud"] = cloud.model_dump(mode="json", exclude_none=True, by_alias=True)
    return out
