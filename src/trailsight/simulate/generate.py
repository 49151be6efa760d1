"""Simulate the organisation for a number of days and write its CloudTrail and labels."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from trailsight.errors import ConfigError
from trailsight.simulate.baseline import DAY, people, root_logins, services, workloads
from trailsight.simulate.organisation import REGIONS, UNUSED_REGIONS, build_organisation
from trailsight.simulate.scenarios import (
    ATTACK_NAMES,
    BENIGN_NAMES,
    EXTRA_ATTACKS,
    Label,
    inject_attack,
    inject_benign,
)
from trailsight.simulate.trail import Trail
from trailsight.simulate.writer import write_trail

#: Where the labels go in the output folder: a hidden folder, which ingest skips (as it skips every
#: hidden entry), so that ``trailsight ingest OUT`` reads the CloudTrail files and nothing else.
LABELS_FILE = Path(".trailsight") / "labels.json"
DEFAULT_START = date(2025, 2, 3)


@dataclass(frozen=True, kw_only=True)
class SimulationResult:
    """What a simulation wrote."""

    out: Path
    events: int
    files: int
    principals: int
    attacks: int
    benign: int
    labels_path: Path
    accounts: dict[str, str]


def parse_attacks(spec: str) -> list[str]:
    """``all`` | ``none`` | comma-separated attack names (``all`` may be one of them) → the names.

    Raises :class:`ConfigError` for an unknown name.
    """
    spec = spec.strip()
    if spec == "all":
        return list(ATTACK_NAMES)
    if spec in ("none", ""):
        return []
    names: list[str] = []
    for part in (s.strip() for s in spec.split(",")):
        for name in ATTACK_NAMES if part == "all" else (part,) if part else ():
            if name not in names:
                names.append(name)
    unknown = [n for n in names if n not in ATTACK_NAMES and n not in EXTRA_ATTACKS]
    if unknown:
        known = ", ".join((*ATTACK_NAMES, *EXTRA_ATTACKS))
        raise ConfigError(f"--attacks: unknown attack {unknown[0]!r} (known: all, none, {known})")
    return names


def simulate(
    out: Path,
    *,
    days: int = 30,
    principals: int = 40,
    seed: int = 7,
    attacks: list[str] | None = None,
    benign: bool = True,
    start: date = DEFAULT_START,
    compresslevel: int = 6,
) -> SimulationResult:
    """Simulate ``days`` days of the organisation from ``start`` and write them under ``out``.

    Attacks (all by default) and benign surprises fall in the last part of the period
    (after ``history_end`` in labels.json) so that every principal has history first.
    The same arguments always produce byte-identical files.
    """
    if days < 3:
        raise ConfigError(f"--days: at least 3 days are needed (got {days})")
    if principals < 6:
        raise ConfigError(f"--principals: at least 6 principals are needed (got {principals})")
    attack_names = list(ATTACK_NAMES) if attacks is None else attacks
    rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not security
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    trail = Trail(rng=rng, start=t0, end=t0 + days * DAY)
    org = build_organisation(rng, principals)
    n_principals = len(org.humans) + len(org.workloads)

    history_days = max(1, int(days * 0.7))
    labels: list[Label] = []
    used: set[str] = set()
    skip: set[tuple[str, int]] = set()

    # Benign surprises first (they add people and decide who travels), then everyday life, then attacks.
    if benign:
        window = list(range(max(1, int(days * 0.55)), days))
        for i, name in enumerate(BENIGN_NAMES):
            day = window[(i * 3 + rng.randrange(2)) % len(window)]
            if name == "new_hire":
                day = window[0]
            elif name in ("travel", "service_adoption"):
                day = max(window[0], min(day, days - 3))  # they last a few days
            lab = inject_benign(trail, org, name, day, days, f"B{i + 1:02d}", used, skip)
            if lab is not None:
                labels.append(lab)
    people(trail, org, days, skip)
    workloads(trail, org, days)
    services(trail, org, days)
    root_logins(trail, org, days)
    for lab in labels:
        if lab.name == "new_hire":
            _label_hire(trail, lab)

    attack_window = list(range(history_days, days)) or [days - 1]
    for i, name in enumerate(attack_names):
        day = attack_window[(i * 2 + rng.randrange(2)) % len(attack_window)]
        labels.append(inject_attack(trail, org, name, day, f"A{i + 1:02d}", used))

    files = write_trail(out, trail, rng, compresslevel=compresslevel)
    accounts = {env: a.id for env, a in org.accounts.items()}
    doc = {
        "generator": "trailsight simulate",
        "seed": seed,
        "start": _iso(t0),
        "end": _iso(t0 + days * DAY),
        "history_end": _iso(t0 + history_days * DAY),
        "accounts": accounts,
        "regions": list(REGIONS),
        "unused_regions": list(UNUSED_REGIONS),
        "counts": {
            "events": len(trail.records),
            "files": files,
            "principals": n_principals,
            "humans": len(org.humans),
            "workloads": len(org.workloads),
            "attack_events": sum(len(lab.event_ids) for lab in labels if lab.kind == "attack"),
            "benign_events": sum(len(lab.event_ids) for lab in labels if lab.kind == "benign"),
        },
        "principals": _principals(org),
        "attacks": [lab.to_dict() for lab in labels if lab.kind == "attack"],
        "benign": [lab.to_dict() for lab in labels if lab.kind == "benign"],
    }
    labels_path = out / LABELS_FILE
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return SimulationResult(
        out=out,
        events=len(trail.records),
        files=files,
        principals=n_principals,
        attacks=sum(1 for lab in labels if lab.kind == "attack"),
        benign=sum(1 for lab in labels if lab.kind == "benign"),
        labels_path=labels_path,
        accounts=accounts,
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _label_hire(trail: Trail, lab: Label) -> None:
    first, last = lab.extra["first_days"]
    lo = datetime.strptime(first, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    hi = datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    for ts, rec in trail.records:
        if lo <= ts < hi and rec["userIdentity"].get("arn") == lab.principal:
            lab.add(rec, ts)


def _principals(org: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for h in org.humans:
        acct = org.accounts["prod"]
        if h.kind == "iam":
            principal = f"arn:aws:iam::{acct.id}:user/{h.name}"
            actor = principal
        else:
            from trailsight.simulate.organisation import SSO_SETS

            role_name, _ = acct.sso_role_ids[SSO_SETS[h.team]]
            principal = f"arn:aws:iam::{acct.id}:role/aws-reserved/sso.amazonaws.com/{role_name}"
            actor = f"{principal}/{h.email}"
        out.append(
            {
                "kind": "human",
                "identity": h.kind,
                "principal": principal,
                "actor": actor,
                "team": h.team,
                "city": h.city,
                "utc_offset": h.utc_offset,
                "home_network": h.home_net,
                "first_day": h.join_day,
            }
        )
    for w in org.workloads:
        acct = org.accounts[w.account]
        principal = f"arn:aws:iam::{acct.id}:role{w.path}{w.role}"
        out.append(
            {
                "kind": "automation",
                "automation": w.kind,
                "principal": principal,
                "actor": principal,
                "account": acct.id,
                "region": w.region,
            }
        )
    return out
