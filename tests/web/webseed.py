"""Test stores for the web UI: a small lake of real CloudTrail events and findings about them.

The lake is the invictus-ir AWS dataset (real Stratus Red Team activity), reduced to the
normalised event schema by a small test-only reader; the findings are saved with the
findings store's own ``save_findings``. A second store holds hostile values (script tags,
attribute breakers, a 100 kB error message) in every attacker-controlled field.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from trailsight.finding import ApiCall, Evidence, Finding, NetworkInfo, Reason, TimelineEntry, UnusualAttribute
from trailsight.schema import EVENT_SCHEMA
from trailsight.store.findings import save_findings
from trailsight.store.layout import StoreLayout

INVICTUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "invictus-ir_aws_dataset" / "CloudTrail"
ACCOUNT = "123837392027"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stratus-red-team-ec2-get-password-data-role"
USER = f"arn:aws:iam::{ACCOUNT}:user/bert-jan"
AWS_IPS = {"3.225.16.109": ("Ashburn", "US"), "52.45.102.28": ("Ashburn", "US")}

HOSTILE_UA = "<script>alert(1)</script>"
HOSTILE_SESSION = '"><img src=x onerror=alert(1)>'
HOSTILE_ERROR = "<svg onload=alert(1)>" + "A" * 100_000


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _ip_fields(ip: str | None) -> dict[str, Any]:
    if not ip:
        return {"ip_kind": "unknown"}
    if ip in AWS_IPS:
        city, country = AWS_IPS[ip]
        return {
            "ip_kind": "aws",
            "net_class": "aws",
            "asn": 14618,
            "as_org": "AMAZON-AES",
            "city": city,
            "country": country,
        }
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return {"ip_kind": "aws-service", "net_class": "aws-service"}
    kind = "private" if addr.is_private else "public"
    return {"ip_kind": kind, "net_class": "private" if addr.is_private else "other"}


def normalise(record: dict[str, Any], source: str, offset: int) -> dict[str, Any]:
    """A test-only reduction of one CloudTrail record to the event schema (enough for the UI)."""
    ui = record.get("userIdentity") or {}
    kind = ui.get("type") or "Unknown"
    session = None
    if kind == "AssumedRole":
        principal = ui["sessionContext"]["sessionIssuer"]["arn"]
        session = str(ui.get("arn", "")).rsplit("/", 1)[-1] or None
    elif kind == "AWSService":
        principal = ui.get("invokedBy") or record.get("eventSource") or "unknown"
    else:
        principal = ui.get("arn") or f"arn:aws:iam::{ACCOUNT}:unknown"
    source_ip = record.get("sourceIPAddress")
    event_time = _ts(record["eventTime"])
    req = record.get("requestParameters")
    ua = record.get("userAgent")
    return {
        "event_id": record["eventID"],
        "event_time": event_time,
        "event_date": event_time.date(),
        "account_id": record.get("recipientAccountId") or ACCOUNT,
        "region": record.get("awsRegion"),
        "event_source": record.get("eventSource"),
        "service": str(record.get("eventSource", "")).removesuffix(".amazonaws.com"),
        "event_name": record["eventName"],
        "read_only": record.get("readOnly"),
        "event_type": record.get("eventType"),
        "error_code": record.get("errorCode"),
        "error_message": record.get("errorMessage"),
        "source_ip": source_ip,
        "user_agent": ua,
        "ua_family": "terraform" if ua and "Terraform" in ua else ("sdk-go" if ua and "aws-sdk-go" in ua else "other"),
        "identity_type": kind,
        "principal": principal,
        "principal_arn": ui.get("arn"),
        "principal_name": str(principal).rsplit("/", 1)[-1],
        "actor": principal,
        "session_name": session,
        "access_key_id": ui.get("accessKeyId"),
        "mfa": {"Yes": True, "No": False}.get((record.get("additionalEventData") or {}).get("MFAUsed")),
        "invoked_by": ui.get("invokedBy"),
        "vpc_endpoint_id": record.get("vpcEndpointId"),
        "request_parameters": json.dumps(req) if req is not None else None,
        "resources": json.dumps(record.get("resources")) if record.get("resources") else None,
        "source_file": source,
        "source_offset": offset,
        "raw": json.dumps(record),
        "tactic": None,
        "technique": None,
        "api_risk": None,
        **_ip_fields(source_ip),
    }


def invictus_events() -> list[dict[str, Any]]:
    """Every record of the invictus-ir dataset, normalised, sorted by time."""
    rows: list[dict[str, Any]] = []
    for path in sorted(INVICTUS.glob("*.json")):
        records = json.loads(path.read_text())["Records"]
        rows.extend(normalise(r, str(path), i) for i, r in enumerate(records))
    rows.sort(key=lambda r: (r["event_time"], r["event_id"]))
    return rows


def write_lake(store: Path, rows: Iterable[dict[str, Any]], batch_id: str = "seed-0001") -> None:
    """Write rows into the store's lake and register them, as ingest does (``trailsight.store.lake``)."""
    from trailsight.store import lake, state

    layout = StoreLayout(store)
    full = [{name: row.get(name) for name in EVENT_SCHEMA.names} for row in rows]
    files = lake.write_batch(layout, pa.Table.from_pylist(full, schema=EVENT_SCHEMA), batch_id)
    with state.connect(layout) as con:
        lake.ensure_tables(con)
        lake.register_files(con, files, batch_id)


def _usual(events: list[dict[str, Any]], principal: str | None, limit: int = 20) -> list[Evidence]:
    counts = Counter(e["event_name"] for e in events if principal is None or e["principal"] == principal)
    return [
        Evidence(value=name, count=n, days=1, frequency="frequent" if n > 20 else "infrequent" if n > 5 else "rare")
        for name, n in counts.most_common(limit)
    ]


def password_finding(events: list[dict[str, Any]], *, fid: str = "f1a2b3c4d5e6f7a8") -> Finding:
    """The finding a detector raises on the role that tried GetPasswordData 29 times (all denied)."""
    mine = [e for e in events if e["principal"] == ROLE]
    unusual = [e for e in mine if e["event_name"] == "GetPasswordData"]
    errors = Counter(e["error_code"] for e in unusual if e["error_code"])
    first, last = unusual[0]["event_time"], unusual[-1]["event_time"]
    return Finding(
        id=fid,
        finding_type="CredentialAccess:AssumedRole/AnomalousBehavior",
        title="stratus-red-team-ec2-get-password-data-role called GetPasswordData 29 times, all denied",
        principal=ROLE,
        actor=ROLE,
        account_id=ACCOUNT,
        identity_type="AssumedRole",
        first_seen=first,
        last_seen=last,
        count=len(unusual),
        score=0.93,
        risk_score=82,
        severity=7.4,
        severity_label="High",
        confidence="High",
        tactic="CredentialAccess",
        tactic_id="TA0006",
        technique="T1552.005",
        event_ids=[e["event_id"] for e in unusual],
        reasons=[
            Reason(
                detector="rare_api_for_principal",
                code="new_api_for_principal",
                score=0.97,
                message="GetPasswordData was never called by this role before",
                details={"peers_using": 0},
            ),
            Reason(
                detector="rare_error_code",
                code="error_burst",
                score=0.88,
                message="29 Client.UnauthorizedOperation errors in 3 minutes",
            ),
        ],
        anomalous_apis=[
            ApiCall(
                service="ec2", event_name="GetPasswordData", success=0, failure=len(unusual), error_codes=dict(errors)
            )
        ],
        unusual=[
            UnusualAttribute(
                attribute="api",
                value="GetPasswordData",
                unusual_for_principal=True,
                unusual_for_account=True,
                principal_usual=_usual([e for e in mine if e not in unusual], ROLE, 3),
                account_usual=_usual(events, None, 4),
                principals_in_account_using=0,
            ),
            UnusualAttribute(
                attribute="error_code",
                value="Client.UnauthorizedOperation",
                unusual_for_principal=True,
                unusual_for_account=False,
                account_usual=[Evidence(value="AccessDenied", count=40, days=1, frequency="infrequent")],
                principals_in_account_using=2,
            ),
        ],
        usual_apis_principal=_usual([e for e in mine if e not in unusual], ROLE),
        usual_apis_account=_usual(events, None),
        networks=[NetworkInfo(ip="192.168.10.20", ip_kind="private", events=len(unusual))],
        user_agents=sorted({str(e["user_agent"]) for e in unusual if e["user_agent"]})[:3],
        session_names=sorted({str(e["session_name"]) for e in unusual if e["session_name"]}),
        explanation=[
            "The role stratus-red-team-ec2-get-password-data-role called ec2:GetPasswordData 29 times within "
            f"{int((last - first).total_seconds())} seconds; it had never called it before, and no "
            "other principal in account 123837392027 calls it.",
            "Every call failed with Client.UnauthorizedOperation: someone is trying to read the Windows "
            "administrator password of EC2 instances without permission.",
            "The role was assumed by user bert-jan minutes earlier from 192.168.10.20.",
        ],
        timeline=[
            TimelineEntry(
                event_id=e["event_id"],
                event_time=e["event_time"],
                event_name=e["event_name"],
                service=e["service"],
                error_code=e["error_code"],
                source_ip=e["source_ip"],
                unusual=True,
                score=0.9,
            )
            for e in unusual
        ],
        detectors={"rare_api_for_principal": 97.0, "rare_error_code": 88.0, "volume_spike": 41.0},
    )


def user_finding(events: list[dict[str, Any]], *, fid: str = "0b1c2d3e4f5a6b7c") -> Finding:
    """A second, medium finding about the user bert-jan's denied AssumeRole calls."""
    mine = [e for e in events if e["principal"] == USER and e["event_name"] == "AssumeRole" and e["error_code"]]
    return Finding(
        id=fid,
        finding_type="PrivilegeEscalation:IAMUser/AnomalousBehavior",
        title="bert-jan was denied AssumeRole 13 times",
        principal=USER,
        actor=USER,
        account_id=ACCOUNT,
        identity_type="IAMUser",
        first_seen=mine[0]["event_time"],
        last_seen=mine[-1]["event_time"],
        count=len(mine),
        score=0.61,
        risk_score=48,
        severity=5.0,
        severity_label="Medium",
        confidence="Medium",
        tactic="PrivilegeEscalation",
        tactic_id="TA0004",
        technique="T1548",
        event_ids=[e["event_id"] for e in mine],
        reasons=[Reason(detector="rare_error_code", code="error_burst", score=0.6, message="13 AccessDenied")],
        anomalous_apis=[
            ApiCall(
                service="sts",
                event_name="AssumeRole",
                success=0,
                failure=len(mine),
                error_codes={"AccessDenied": len(mine)},
            )
        ],
        networks=[
            NetworkInfo(ip="192.168.10.20", ip_kind="private", events=len(mine)),
            NetworkInfo(
                ip="3.225.16.109",
                ip_kind="aws",
                net_class="aws",
                asn=14618,
                as_org="AMAZON-AES",
                city="Ashburn",
                country="US",
                events=1,
            ),
        ],
        access_keys=sorted({str(e["access_key_id"]) for e in mine if e["access_key_id"]}),
        explanation=["bert-jan tried to assume roles it may not assume, 13 times."],
    )


def seed_store(store: Path) -> list[dict[str, Any]]:
    """A store with the invictus lake and two findings about it; returns the events."""
    events = invictus_events()
    write_lake(store, events)
    save_findings(store, [password_finding(events), user_finding(events)])
    return events


def synthetic_findings(n: int, start: datetime | None = None) -> list[Finding]:
    """``n`` small findings spread over 60 days, for list and paging tests."""
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    tactics = ["Discovery", "Persistence", "DefenseEvasion", "CredentialAccess", None]
    labels = [("Low", 2.0), ("Medium", 5.0), ("High", 7.5)]
    out = []
    for i in range(n):
        label, sev = labels[i % 3]
        tactic = tactics[i % 5]
        t = start + timedelta(minutes=37 * i % (60 * 24 * 60))
        out.append(
            Finding(
                id=f"s{i:015d}",
                finding_type=f"{tactic or 'Unusual'}:IAMUser/AnomalousBehavior",
                title=f"user-{i % 97} did something unusual #{i}",
                principal=f"arn:aws:iam::11112222{i % 7:04d}:user/user-{i % 97}",
                actor=f"arn:aws:iam::11112222{i % 7:04d}:user/user-{i % 97}",
                account_id=f"11112222{i % 7:04d}",
                identity_type="IAMUser",
                first_seen=t,
                last_seen=t + timedelta(minutes=5),
                count=1 + i % 9,
                score=(i % 100) / 100,
                risk_score=i % 101,
                severity=sev,
                severity_label=label,
                confidence=["Low", "Medium", "High"][i % 3],
                tactic=tactic,
                tactic_id=None,
                technique=None,
                event_ids=[f"e{i}"],
                reasons=[],
            )
        )
    return out


def hostile_store(store: Path) -> str:
    """A store whose every attacker-controlled string is hostile; returns the finding id."""
    t0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
    principal = f"arn:aws:iam::{ACCOUNT}:role/evil<script>alert(1)</script>"
    rows = []
    for i in range(6):
        raw = {
            "eventID": f"hostile-{i}",
            "eventTime": (t0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "eventName": "GetSecretValue" if i % 2 else "<b>ListBuckets</b>",
            "eventSource": "secretsmanager.amazonaws.com",
            "userAgent": HOSTILE_UA,
            "errorCode": "AccessDenied",
            "errorMessage": HOSTILE_ERROR,
            "sourceIPAddress": "203.0.113.9",
            "requestParameters": {"secretId": "</script><script>alert(1)</script>", "x": HOSTILE_SESSION},
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/evil/{HOSTILE_SESSION}",
                "accessKeyId": "ASIA<script>1",
                "sessionContext": {"sessionIssuer": {"arn": principal}},
            },
            "recipientAccountId": ACCOUNT,
        }
        row = normalise(raw, "hostile.json", i)
        row.update(
            {
                "as_org": "<img src=x onerror=alert(1)>",
                "city": HOSTILE_SESSION,
                "country": "XX",
                "asn": 64500,
                "ip_kind": "public",
                "actor": principal + "/" + HOSTILE_SESSION,  # a session name that is also the actor key
            }
        )
        rows.append(row)
    write_lake(store, rows)
    finding = Finding(
        id="hostile0000000001",
        finding_type="Exfiltration:AssumedRole/AnomalousBehavior",
        title=f"{HOSTILE_UA} {HOSTILE_SESSION}",
        principal=principal,
        actor=principal + "/" + HOSTILE_SESSION,
        account_id=ACCOUNT,
        identity_type="AssumedRole",
        first_seen=t0,
        last_seen=t0 + timedelta(minutes=5),
        count=6,
        score=0.99,
        risk_score=99,
        severity=8.5,
        severity_label="High",
        confidence="High",
        tactic="Exfiltration",
        tactic_id="TA0010",
        technique="T1530",
        event_ids=[r["event_id"] for r in rows],
        reasons=[Reason(detector="rare_api_for_principal", code="new_api", score=0.9, message=HOSTILE_ERROR)],
        anomalous_apis=[
            ApiCall(
                service="secretsmanager", event_name=HOSTILE_UA, success=1, failure=5, error_codes={HOSTILE_ERROR: 5}
            )
        ],
        unusual=[
            UnusualAttribute(
                attribute="user_agent",
                value=HOSTILE_UA,
                unusual_for_principal=True,
                unusual_for_account=True,
                principal_usual=[Evidence(value=HOSTILE_SESSION, count=3, frequency="rare")],
                account_usual=[Evidence(value=HOSTILE_ERROR, count=1, frequency="rare")],
            )
        ],
        usual_apis_principal=[Evidence(value=HOSTILE_ERROR, count=1, frequency="rare")],
        networks=[
            NetworkInfo(
                ip="203.0.113.9",
                ip_kind="public",
                asn=64500,
                as_org="<img src=x onerror=alert(1)>",
                city=HOSTILE_SESSION,
                country="XX",
                events=6,
            )
        ],
        user_agents=[HOSTILE_UA, HOSTILE_ERROR],
        access_keys=["ASIA<script>1"],
        session_names=[HOSTILE_SESSION],
        explanation=[HOSTILE_ERROR, f"Session {HOSTILE_SESSION} used agent {HOSTILE_UA}"],
        detectors={"<script>alert(1)</script>": 50.0},
    )
    save_findings(store, [finding])
    return finding.id
