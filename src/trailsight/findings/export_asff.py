"""A finding in the AWS Security Finding Format (ASFF, SchemaVersion 2018-10-08) for Security Hub.

The output of :func:`to_asff` is ready for ``BatchImportFindings`` (at most 100 findings per
call) and is checked against the ``BatchImportFindings`` input shape of botocore's bundled
Security Hub service model (:func:`validate_asff`, offline), plus the length limits the
model does not carry (Title 256, Description 1,024, Id 512, ProductFields 50 entries).

Mapping: ``Id`` ``trailsight/<account>/<finding id>``; ``ProductArn``
``arn:aws:securityhub:<region>:<account>:product/<account>/default`` (the "default" product a
customer's own account uses to import its own findings); ``GeneratorId``
``trailsight/anomalous-behavior``; ``Types`` the tactic in the ASFF taxonomy (``TTPs/Discovery``,
``TTPs/Privilege Escalation``, ``Effects/Data Exfiltration`` ...) plus ``Unusual Behaviors/User``;
``Severity`` label from GuardDuty's bands and ``Normalized`` = severity × 10 (GuardDuty's own
mapping); ``Confidence`` Low/Medium/High → 30/60/90; ``Criticality`` the risk score; ``Resources``
the principal (``AwsIamUser`` / ``AwsIamRole`` / ``AwsIamAccessKey`` / ``Other``), then the resources
its calls touched (``AwsS3Bucket``, ``AwsRdsDbSnapshot`` … from ``resource_fields.csv``, at most 32 in
all); ``Remediation.Recommendation.Text`` the next steps; ``Network`` and
``Action.AwsApiCallAction`` from the first source network and anomalous API, GuardDuty style;
``FindingProviderFields`` repeats severity, confidence, criticality and types; ``ProductFields``
carry trailsight's own fields (effects and counterparties included); ``Workflow.Status`` follows the analyst's status.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from functools import cache
from typing import Any

from botocore.session import get_session
from botocore.validate import ParamValidator

from trailsight.enrich.geo import GEO_ATTRIBUTION
from trailsight.enrich.netclass import label as net_class_label
from trailsight.enrich.network import parse_ip
from trailsight.enrich.touched import asff_type
from trailsight.errors import TrailsightError
from trailsight.finding import Finding
from trailsight.findings.export_common import clean_tree, clip, iso_z, sentences, tactic_id
from trailsight.findings.names import person_name

SCHEMA_VERSION = "2018-10-08"
GENERATOR_ID = "trailsight/anomalous-behavior"
DEFAULT_REGION = "us-east-1"
MAX_BATCH = 100

#: ASFF type per tactic (namespace/category of the ASFF types taxonomy).
ASFF_TYPES = {
    "Discovery": "TTPs/Discovery",
    "InitialAccess": "TTPs/Initial Access",
    "Persistence": "TTPs/Persistence",
    "PrivilegeEscalation": "TTPs/Privilege Escalation",
    "DefenseEvasion": "TTPs/Defense Evasion",
    "CredentialAccess": "TTPs/Credential Access",
    "Execution": "TTPs/Execution",
    "Collection": "TTPs/Collection",
    "LateralMovement": "TTPs/Lateral Movement",
    "Exfiltration": "Effects/Data Exfiltration",
    "Impact": "Effects/Data Destruction",
}
_IMPACT_TYPES = {"T1496": "Effects/Resource Consumption", "T1531": "Effects/Denial of Service"}
_CONFIDENCE = {"Low": 30, "Medium": 60, "High": 90}
_WORKFLOW = {
    "Open": "NEW",
    "Acknowledged": "NOTIFIED",
    "Malicious": "NOTIFIED",
    "Dismissed": "RESOLVED",
    "Suppressed": "SUPPRESSED",
}
_MAX_PRODUCT_FIELDS = 50
_RESOURCE_TYPE = {"IAMUser": "AwsIamUser", "AssumedRole": "AwsIamRole"}
_MAX_RESOURCES = 32  # BatchImportFindings' limit on Resources


def severity_label(severity: float) -> str:
    """ASFF severity label of a GuardDuty-band severity (LOW 1–3.9, MEDIUM 4–6.9, HIGH 7–8.9, CRITICAL ≥ 9)."""
    if severity <= 0:
        return "INFORMATIONAL"
    if severity < 4:
        return "LOW"
    if severity < 7:
        return "MEDIUM"
    if severity < 9:
        return "HIGH"
    return "CRITICAL"


def asff_types(f: Finding) -> list[str]:
    """The finding's ASFF types: its tactic's, then ``Unusual Behaviors/User``."""
    types: list[str] = []
    if f.tactic in ASFF_TYPES:
        kind = ASFF_TYPES[f.tactic]
        if f.tactic == "Impact" and f.technique:
            kind = _IMPACT_TYPES.get(f.technique.split(".", 1)[0], kind)
        types.append(kind)
    types.append("Unusual Behaviors/User")
    return types


def _resources(f: Finding, region: str) -> list[dict[str, Any]]:
    rtype = _RESOURCE_TYPE.get(f.identity_type, "Other")
    details: dict[str, str] = {
        "Principal": clip(f.principal, 1024),
        "Actor": clip(f.actor, 1024),
        "IdentityType": clip(f.identity_type, 1024),
    }
    if f.session_names:
        details["SessionNames"] = clip(", ".join(f.session_names[:20]), 1024)
    principal: dict[str, Any] = {
        "Type": rtype,
        "Id": clip(f.principal, 512) or f"arn:aws:iam::{f.account_id}:unknown",
        "Partition": "aws",
        "Region": region,
        "Details": {"Other": details},
    }
    resources = [principal]
    for key in f.access_keys[:9]:
        resources.append({"Type": "AwsIamAccessKey", "Id": clip(key, 512), "Partition": "aws", "Region": region})
    # What the calls touched, after the principal and its keys (BatchImportFindings takes 32).
    for r in f.resources[: _MAX_RESOURCES - len(resources)]:
        resources.append(
            {
                "Type": asff_type(r.type),
                "Id": clip(r.id, 512),
                "Partition": "aws",
                "Region": region,
                "Details": {"Other": {"TouchedAs": clip(r.type, 1024), "Calls": str(r.events)}},
            }
        )
    return resources


def _ip_fields(ip: str) -> dict[str, str]:
    addr = parse_ip(ip)
    if addr is None:
        return {}
    text = str(ipaddress.ip_address(addr[1]))
    return {"SourceIpV4": text} if addr[0] == 4 else {"SourceIpV6": text}


def _network_and_action(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {}
    net = next((n for n in f.networks if parse_ip(n.ip) is not None), None)
    if net is not None:
        out["Network"] = {"Direction": "IN", **_ip_fields(net.ip)}
    elif f.networks:
        out["Network"] = {"Direction": "IN", "SourceDomain": clip(f.networks[0].ip, 128)}
    if f.anomalous_apis:
        call = f.anomalous_apis[0]
        action: dict[str, Any] = {
            "Api": clip(call.event_name, 128),
            "ServiceName": clip(call.service, 128),
            "FirstSeen": iso_z(f.first_seen),
            "LastSeen": iso_z(f.last_seen),
        }
        if net is not None:
            addr = parse_ip(net.ip)
            remote: dict[str, Any] = {}
            if addr is not None and addr[0] == 4:
                remote["IpAddressV4"] = str(ipaddress.IPv4Address(addr[1]))
            if net.asn is not None or net.as_org:
                remote["Organization"] = {
                    k: v for k, v in (("Asn", net.asn), ("AsnOrg", net.as_org), ("Org", net.as_org)) if v is not None
                }
            if net.country:
                remote["Country"] = {"CountryCode": net.country}
            if net.city:
                remote["City"] = {"CityName": net.city}
            if remote:
                action["CallerType"] = "remoteIp"
                action["RemoteIpDetails"] = remote
        elif f.networks:
            action["CallerType"] = "domain"
            action["DomainDetails"] = {"Domain": clip(f.networks[0].ip, 128)}
        out["Action"] = {"ActionType": "AWS_API_CALL", "AwsApiCallAction": action}
    return out


def _product_fields(f: Finding) -> dict[str, str]:
    fields = {
        "trailsight/FindingId": f.id,
        "trailsight/FindingType": f.finding_type,
        "trailsight/Principal": f.principal,
        "trailsight/Actor": f.actor,
        "trailsight/Who": person_name(f.principal, f.actor),
        "trailsight/Score": f"{f.score:.4f}",
        "trailsight/RiskScore": str(f.risk_score),
        "trailsight/Confidence": f.confidence,
        "trailsight/Status": f.status,
        "trailsight/EventCount": str(f.count),
        "trailsight/EventIds": " ".join(f.event_ids[:60]),
        "trailsight/Detectors": ", ".join(f"{k}={v:g}" for k, v in sorted(f.detectors.items())),
    }
    if f.tactic:
        fields["trailsight/Tactic"] = f.tactic
        tid = tactic_id(f.tactic, f.tactic_id)
        if tid:
            fields["trailsight/TacticId"] = tid
    if f.technique:
        fields["trailsight/Technique"] = f.technique
    if f.user_agents:
        fields["trailsight/UserAgents"] = " | ".join(f.user_agents[:5])
    if f.gated:
        fields["trailsight/Gated"] = "true"
    if f.effects:
        fields["trailsight/Effects"] = " | ".join(e.description for e in f.effects[:10])
    if f.counterparties:
        fields["trailsight/Counterparties"] = " | ".join(f"{p.kind} {p.id}" for p in f.counterparties[:20])
    classes = list(dict.fromkeys(net_class_label(n.net_class) for n in f.networks if n.net_class))
    if classes:
        fields["trailsight/NetworkClasses"] = " | ".join(classes[:10])
    if any(n.country or n.city for n in f.networks):
        fields["trailsight/GeoAttribution"] = GEO_ATTRIBUTION
    if f.story_id:
        fields["trailsight/StoryId"] = f.story_id
    if f.principals:
        fields["trailsight/Principals"] = " ".join(f.principals)
    room = _MAX_PRODUCT_FIELDS - len(fields)
    for i, step in enumerate(f.steps[:room], start=1):
        tactic = f" [{step.tactic}]" if step.tactic else ""
        fields[f"trailsight/Step{i:02d}"] = f"{iso_z(step.time)} {step.actor} ({step.account_id}): {step.what}{tactic}"
    return {clip(k, 128): clip(v, 2048) for k, v in fields.items() if v}


def _related(f: Finding, region: str) -> list[dict[str, str]]:
    """A story's member findings, or a member's story (same account: the product ARN is the account's)."""
    ids = list(f.members) + ([f.story_id] if f.story_id else [])
    product = f"arn:aws:securityhub:{region}:{f.account_id}:product/{f.account_id}/default"
    return [{"ProductArn": product, "Id": clip(f"trailsight/{f.account_id}/{i}", 512)} for i in ids[:10]]


def to_asff(f: Finding, *, region: str = DEFAULT_REGION, now: datetime | None = None) -> dict[str, Any]:
    """The finding as one ASFF finding for ``BatchImportFindings`` (``now`` = UpdatedAt, default the clock)."""
    account = f.account_id
    updated = now or datetime.now(UTC)
    sev = severity_label(f.severity)
    normalized = max(0, min(100, round(f.severity * 10)))
    confidence = _CONFIDENCE.get(f.confidence, 0)
    criticality = max(0, min(100, f.risk_score))
    types = asff_types(f)
    description = sentences(f.explanation) or f.title
    finding: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": clip(f"trailsight/{account}/{f.id}", 512),
        "ProductArn": f"arn:aws:securityhub:{region}:{account}:product/{account}/default",
        "ProductName": "trailsight",
        "CompanyName": "trailsight",
        "Region": region,
        "GeneratorId": GENERATOR_ID,
        "AwsAccountId": account,
        "Types": types,
        "FirstObservedAt": iso_z(f.first_seen),
        "LastObservedAt": iso_z(f.last_seen),
        "CreatedAt": iso_z(f.last_seen),
        "UpdatedAt": iso_z(max(updated, f.last_seen)),
        "Severity": {"Label": sev, "Normalized": normalized, "Original": f"{f.severity:g}"},
        "Confidence": confidence,
        "Criticality": criticality,
        "Title": clip(f.title or f.finding_type, 256),
        "Description": clip(description or f.finding_type, 1024),
        "ProductFields": _product_fields(f),
        "Resources": _resources(f, region),
        "Workflow": {"Status": _WORKFLOW.get(f.status, "NEW")},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {
            "Confidence": confidence,
            "Criticality": criticality,
            "Severity": {"Label": sev, "Original": f"{f.severity:g}"},
            "Types": types,
        },
        **_network_and_action(f),
    }
    if f.next_steps:
        finding["Remediation"] = {"Recommendation": {"Text": clip(" ".join(f.next_steps), 512)}}
    related = _related(f, region)
    if related:
        finding["RelatedFindings"] = related
    cleaned: dict[str, Any] = clean_tree(finding)
    return cleaned


@cache
def _findings_shape() -> Any:
    model = get_session().get_service_model("securityhub")
    return model.operation_model("BatchImportFindings").input_shape


def validate_asff(findings: list[dict[str, Any]]) -> None:
    """Check findings against botocore's ``BatchImportFindings`` input shape; TrailsightError if invalid."""
    for start in range(0, len(findings), MAX_BATCH):
        batch = findings[start : start + MAX_BATCH]
        report = ParamValidator().validate({"Findings": batch}, _findings_shape())
        if report.has_errors():
            first = report.generate_report().splitlines()
            raise TrailsightError(f"ASFF export: finding does not fit BatchImportFindings: {' '.join(first[:3])}")
    for finding in findings:
        if len(finding["Title"]) > 256 or len(finding["Description"]) > 1024 or len(finding["Id"]) > 512:
            raise TrailsightError(f"ASFF export: {finding['Id'][:80]}: Title, Description or Id too long")
        if len(finding.get("ProductFields", {})) > 50:
            raise TrailsightError(f"ASFF export: {finding['Id'][:80]}: more than 50 ProductFields")


__all__ = ["ASFF_TYPES", "SCHEMA_VERSION", "asff_types", "severity_label", "to_asff", "validate_asff"]
