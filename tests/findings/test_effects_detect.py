"""End to end on a store with no history: an admin policy put to oneself is raised as High.

Hand-made CloudTrail (the shape S3 delivery writes) goes through the real ingest and
``trailsight.pipeline.detect``; nothing else is in the store, so every principal is new.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from trailsight.ingest import ingest
from trailsight.pipeline import detect

ACCOUNT = "210987654321"
T0 = datetime(2025, 5, 6, 3, 12, tzinfo=UTC)


def _record(n: int, name: str, source: str, request: dict[str, Any] | None, response: Any = None) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/dev-sam",
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAEXAMPLEDEVSAM001",
            "userName": "dev-sam",
        },
        "eventTime": (T0 + timedelta(seconds=20 * n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "185.220.101.7",
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0",
        "requestParameters": request,
        "responseElements": response,
        "requestID": f"req-{n}",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }


def test_admin_put_to_oneself_is_high_without_history(tmp_path: Path) -> None:
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    records = [
        _record(0, "GetCallerIdentity", "sts.amazonaws.com", None),
        _record(
            1,
            "PutUserPolicy",
            "iam.amazonaws.com",
            {"userName": "dev-sam", "policyName": "ops", "policyDocument": quote(json.dumps(admin))},
        ),
        _record(
            2,
            "CreateAccessKey",
            "iam.amazonaws.com",
            {"userName": "dev-sam"},
            {"accessKey": {"accessKeyId": "AKIANEWKEYNEWKEY0001", "status": "Active", "userName": "dev-sam"}},
        ),
        _record(3, "StopLogging", "cloudtrail.amazonaws.com", {"name": "org-trail"}),
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / f"{ACCOUNT}_CloudTrail_us-east-1_20250506T0315Z_test.json").write_text(
        json.dumps({"Records": records}), encoding="utf-8"
    )
    store = tmp_path / "store"
    ingest([logs], store, workers=0)
    findings = detect(store, T0 - timedelta(hours=1), T0 + timedelta(hours=1), save=False)
    assert len(findings) == 1
    f = findings[0]
    assert f.gated  # no history at all: the enough-data gate
    assert f.confidence == "Low"
    assert f.severity_label == "High"
    assert f.severity >= 7.5  # a newcomer doing it is worse, not better
    kinds = [e.kind for e in f.effects]
    assert kinds == ["admin_grant", "logging_off"]
    assert f.effects[0].description == "put an inline policy allowing every action (ops) to itself (user dev-sam)"
    assert {(p.kind, p.id) for p in f.counterparties} == {
        ("principal", "dev-sam"),
        ("access key", "AKIANEWKEYNEWKEY0001"),
    }
    assert any(step.startswith("Detach the admin policy") for step in f.next_steps)
    assert any(line.startswith("What the calls did: put an inline policy") for line in f.explanation)
