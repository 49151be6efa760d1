"""Two people behind one shared role in the same half hour: the finding scores one person's evidence.

Hand-made unusual events of an SSO permission-set role, grouped by the real grouping and scored by
the real scoring policy (the shape of the dev set's travel trap): one person calls APIs new to
them (novelty of *what*, no context), another calls a usual API from a network new to them
(context only). Made by one person, the new APIs weighted by the new network clear the alert
level (0.5); made by two, neither person's evidence does, and the finding scores the stronger one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from trailsight.finding import Reason, UnusualEvent
from trailsight.findings.group import group_findings
from trailsight.scoring.options import ScoringOptions

ROLE = "arn:aws:iam::768255226778:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DeveloperAccess_0be60a5d800f328a"
DEV = f"{ROLE}/ava.costa@northwind.io"
TRAVELLER = f"{ROLE}/omar.haddad@northwind.io"
T0 = datetime(2025, 3, 5, 14, 39, tzinfo=UTC)
GAP = timedelta(minutes=30)
FLOOR = ScoringOptions().min_score


def _event(n: int, actor: str, minute: int, api: str, *, what: float, context: float, risk: float) -> UnusualEvent:
    service, name = api.split(":")
    row: dict[str, Any] = {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "event_time": T0 + timedelta(minutes=minute),
        "principal": ROLE,
        "actor": actor,
        "account_id": "768255226778",
        "identity_type": "AssumedRole",
        "service": service,
        "event_name": name,
        "api": api,
        "source_ip": "74.210.46.38" if actor == TRAVELLER else "12.219.232.172",
        "api_risk": risk,
        "p_age_days": 30.0,
    }
    detector = "unusual_network" if context else "behaviour_model"
    reason = Reason(detector=detector, code="x", score=max(what, context), message=f"{api} by {actor}")
    return UnusualEvent(
        row=row, score=0.4, risk=risk, what=what, context=context, corroborated=False, gated=False, reasons=(reason,)
    )


def _events() -> list[UnusualEvent]:
    return [
        _event(1, TRAVELLER, 0, "ssm:GetParametersByPath", what=0.0, context=0.9, risk=0.5),
        _event(2, DEV, 18, "iam:ListUsers", what=0.98, context=0.0, risk=0.2),
        _event(3, DEV, 19, "ec2:DescribeVpcs", what=0.93, context=0.0, risk=0.1),
        _event(4, TRAVELLER, 23, "ssm:GetParametersByPath", what=0.0, context=0.9, risk=0.5),
    ]


def _as(actor: str, events: list[UnusualEvent]) -> list[UnusualEvent]:
    return [replace(e, row={**e.row, "actor": actor}) for e in events]


def test_one_persons_new_apis_are_not_weighted_by_another_persons_new_network() -> None:
    (together,) = group_findings(_events(), GAP)
    # One finding of the role's burst, naming the role: both people's calls are in it ...
    assert together.count == 4
    assert together.actor == ROLE
    # ... scored as the stronger person's calls alone, under the alert level.
    alone = [group_findings([e for e in _events() if e.row["actor"] == a], GAP)[0].score for a in (DEV, TRAVELLER)]
    assert together.score == max(alone)
    assert together.score < FLOOR


def test_the_same_calls_by_one_person_clear_the_alert_level() -> None:
    (finding,) = group_findings(_as(DEV, _events()), GAP)
    assert finding.actor == DEV
    assert finding.score >= FLOOR
