"""Who acted is named person first in the title and in every export format.

A finding is built by the real grouping from an unusual event of an SSO permission-set role
whose session carries the person, then written as JSON lines, CSV, OCSF, ASFF, Slack and Teams.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from trailsight.finding import Finding, Reason, UnusualEvent
from trailsight.findings.export import FORMATS, write_export
from trailsight.findings.group import group_findings

ROLE = "arn:aws:iam::768255226778:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DeveloperAccess_0be60a5d800f328a"
ACTOR = f"{ROLE}/ava.costa@northwind.io"
WHO = "ava.costa@northwind.io via AWSReservedSSO_DeveloperAccess"


@pytest.fixture(scope="module")
def finding() -> Finding:
    row = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_time": datetime(2025, 3, 5, 14, 7, tzinfo=UTC),
        "principal": ROLE,
        "actor": ACTOR,
        "account_id": "768255226778",
        "identity_type": "AssumedRole",
        "service": "sqs",
        "event_name": "SetQueueAttributes",
        "api": "sqs:SetQueueAttributes",
        "source_ip": "88.82.18.2",
        "tactic": "Persistence",
        "technique": "T1098",
        "api_risk": 0.5,
        "p_age_days": 20.0,
    }
    reason = Reason(detector="behaviour_model", code="new_api", score=0.9, message="sqs:SetQueueAttributes is new")
    event = UnusualEvent(
        row=row, score=0.7, risk=0.5, what=0.9, context=0.2, corroborated=False, gated=False, reasons=(reason,)
    )
    (f,) = group_findings([event], timedelta(minutes=30))
    return f


def _export(f: Finding, fmt: str) -> str:
    out = io.StringIO()
    write_export([f], fmt, out, region="us-east-1", ui_url="https://ts.example")
    return out.getvalue()


def test_the_title_leads_with_the_person(finding: Finding) -> None:
    assert finding.title.startswith(f"{WHO}: unusual SetQueueAttributes")
    assert finding.explanation[0].startswith(f"{WHO} made 1 unusual call")


def test_every_export_leads_with_the_person(finding: Finding) -> None:
    assert set(FORMATS) == {"jsonl", "ocsf", "asff", "csv", "slack", "teams"}
    assert json.loads(_export(finding, "jsonl"))["title"].startswith(WHO)
    (row,) = csv.DictReader(io.StringIO(_export(finding, "csv"), newline=""))
    assert (row["title"].startswith(WHO), row["who"], row["actor"]) == (True, WHO, ACTOR)
    ocsf = json.loads(_export(finding, "ocsf"))
    assert ocsf["finding_info"]["title"].startswith(WHO)
    assert {e["actor"]["user"]["name"] for e in ocsf["evidences"] if "actor" in e} == {WHO}
    asff = json.loads(_export(finding, "asff"))
    (item,) = asff if isinstance(asff, list) else asff["Findings"]
    assert item["Title"].startswith(WHO)
    assert item["ProductFields"]["trailsight/Who"] == WHO
    slack = _export(finding, "slack")
    fields = [x["text"] for b in json.loads(slack)["blocks"] for x in b.get("fields", [])]
    assert f"Principal: {WHO}" in fields
    teams = json.loads(_export(finding, "teams"))
    facts = {x["title"]: x["value"] for x in _facts(teams)}
    assert facts["Principal"].replace("\\_", "_") == WHO  # Teams' markdown escapes the underscores
    for text in (slack, json.dumps(teams)):
        assert "0be60a5d800f328a" not in text.replace(ROLE, "")


def _facts(node: object) -> list[dict[str, str]]:
    """Every ``{"title", "value"}`` fact of an adaptive card, wherever it sits."""
    if isinstance(node, dict):
        if set(node) == {"title", "value"}:
            return [node]
        return [f for v in node.values() for f in _facts(v)]
    if isinstance(node, list):
        return [f for v in node for f in _facts(v)]
    return []
