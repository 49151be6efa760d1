"""What a call did: dangerous effects read from a CloudTrail call's request and response.

Novelty says a call is new for its caller; the request says what it did. This module reads
``requestParameters`` (and ``responseElements`` where the request alone is not enough) and
recognises the effects an analyst needs to see whatever the caller's history:

* an admin grant — a managed admin policy (``AdministratorAccess``, ``IAMFullAccess``)
  attached, or an inline / new policy version allowing ``*``, ``*:*`` or ``iam:*`` (or
  ``NotAction`` on ``*``); ``Resource: *`` with a service-wide or write wildcard
  (``s3:*``, ``ec2:Create*``) is a *broad* grant. The grant names its target: the caller
  itself, a principal created shortly before, or another one;
* a trust policy letting an account outside the organisation, or anyone, assume a role;
* snapshots, AMIs, RDS snapshots, KMS grants and resource policies shared with an account the
  organisation has never seen, or made public; a bucket ACL granting everyone; a public access
  block removed or relaxed;
* a security group opened to ``0.0.0.0/0`` or ``::/0``;
* logging and monitoring turned off or narrowed (CloudTrail, GuardDuty, Security Hub, Config,
  flow logs, leaving the organization);
* an access key or a console password created for *another* user.

Which API is read by which check, and where its policy or permission sits in the request, is
data: ``catalog/effects.csv``. Each kind's ATT&CK tactic and technique, least severity and
are in ``catalog/effect_kinds.csv``. Everything here is a pure function of one call and
an :class:`EffectContext` (the accounts the organisation knows, the principals created shortly
before); nothing raises on malformed input — a request that cannot be read has no effect.

Policy documents come as objects, as JSON text, and (in some responses) as URL-encoded JSON
text; :func:`policy_document` reads all three.

A call that failed (an error code) did nothing, but the attempt is telling: its effects are
kept with ``succeeded=False`` and their description says so.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote

from trailsight.enrich.catalog import base_event_name
from trailsight.errors import ConfigError
from trailsight.finding import TACTICS

EFFECTS_FILE = "effects.csv"
KINDS_FILE = "effect_kinds.csv"
EFFECTS_COLUMNS = ("event_source", "event_name", "check", "param", "resource_type", "technique", "words")
KINDS_COLUMNS = ("kind", "tactic", "technique", "severity")

#: AWS-managed policies that give full control of the account (or of IAM, which is the same).
ADMIN_MANAGED_POLICIES = frozenset({"AdministratorAccess", "IAMFullAccess"})

#: Condition keys that tie a ``"*"`` principal to the organisation, a network or a source: a
#: statement restricted by one of them is not public.
RESTRICTING_CONDITION_KEYS = frozenset(
    {
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceip",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceowner",
        "aws:sourceorgid",
        "kms:calleraccount",
        "kms:viaservice",
    }
)

_ACCOUNT = re.compile(r"^\d{12}$")
_ARN_ACCOUNT = re.compile(r"^arn:aws[\w-]*:[\w-]+:[\w-]*:(\d{12}):")
_PUBLIC_ACL_URIS = ("AllUsers", "AuthenticatedUsers")
_PUBLIC_CANNED_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
_WEB_PORTS = frozenset({80, 443})
_WRITE_WILDCARDS = ("*", "Put*", "Create*", "Delete*", "Update*", "Attach*", "Modify*", "Set*")


@dataclass(frozen=True, kw_only=True)
class Call:
    """One call as the checks read it; ``request`` and ``response`` are parsed objects."""

    event_source: str
    event_name: str
    request: Mapping[str, Any]
    response: Mapping[str, Any]
    error_code: str | None = None
    account_id: str = ""
    caller: str = ""  # the principal ARN (user or role), or empty
    caller_type: str = ""  # userIdentity.type (IAMUser, AssumedRole, Root ...)
    session_name: str = ""  # an assumed role's session name (often the person's user name)

    @property
    def caller_name(self) -> str:
        """The caller's user or role name (last segment of its ARN)."""
        return last_segment(self.caller)


@dataclass(frozen=True, kw_only=True)
class EffectContext:
    """What the checks need beyond the call.

    ``known_accounts``: accounts of the organisation and counterparties seen in its history (the
    caller's own account is always known). ``recent_principals``: user and role names created
    shortly before the call (by the same actor, in the same finding).
    """

    known_accounts: frozenset[str] = frozenset()
    recent_principals: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Effect:
    """One effect of a call: its kind, ATT&CK mapping, plain words and what it touched."""

    kind: str
    tactic: str
    technique: str
    description: str
    succeeded: bool = True
    resources: tuple[str, ...] = ()
    counterparties: tuple[str, ...] = ()
    resource_type: str = ""  # what kind of resource ``resources`` are (effects.csv)


@dataclass(frozen=True, kw_only=True)
class EffectKind:
    """A kind of effect (``effect_kinds.csv``)."""

    kind: str
    tactic: str
    technique: str
    severity: str


@dataclass(frozen=True, kw_only=True)
class Hit:
    """What a check found, before the kind's ATT&CK mapping is added."""

    kind: str
    description: str
    resources: tuple[str, ...] = ()
    counterparties: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One row of ``effects.csv``."""

    check: str
    param: str
    resource_type: str = ""
    technique: str | None = None
    words: str = ""  # what the call did, for the checks whose call is the effect


Check = Callable[[Call, Rule, EffectContext], list[Hit]]


# ---------------------------------------------------------------------------------------------
# Reading requests


def parse_json(value: Any) -> Any:
    """An object from a JSON value that may be text, URL-encoded text or already parsed; None if unreadable."""
    if value is None or isinstance(value, dict | list):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    for candidate in (text, unquote(text)) if "%" in text else (text,):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    return None


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A mapping from a parsed or unparsed JSON object; ``{}`` for anything else."""
    parsed = parse_json(value)
    return parsed if isinstance(parsed, dict) else {}


def policy_document(value: Any) -> Mapping[str, Any] | None:
    """A policy document (object, JSON text or URL-encoded JSON text); None when it is not one."""
    doc = parse_json(value)
    # A document inside a one-element list happens in some S3 records ("policy": ["..."]).
    if isinstance(doc, list) and len(doc) == 1:
        doc = parse_json(doc[0])
    return doc if isinstance(doc, dict) and "Statement" in doc else None


def statements(doc: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The statements of a policy document (a single statement object counts as one)."""
    if doc is None:
        return []
    raw = doc.get("Statement")
    items = raw if isinstance(raw, list) else [raw]
    return [s for s in items if isinstance(s, dict)]


def as_strings(value: Any) -> list[str]:
    """A string or a list of strings (anything else dropped)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def field_at(mapping: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of nested mappings (None when a step is missing)."""
    value: Any = mapping
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def last_segment(value: str) -> str:
    """The name at the end of a path in a request value: a trail, policy or queue ARN or URL → its name.

    (Findings name principals with :mod:`trailsight.findings.names`; this reads request values.)
    """
    return value.rsplit("/", 1)[-1] if "/" in value else value


def account_of(principal: str) -> str | None:
    """The account of a principal given as an account id or an ARN; None for anything else."""
    if _ACCOUNT.match(principal):
        return principal
    m = _ARN_ACCOUNT.match(principal)
    return m.group(1) if m else None


def _allows(stmt: Mapping[str, Any]) -> bool:
    return str(stmt.get("Effect", "")).lower() == "allow"


def _principals(stmt: Mapping[str, Any]) -> list[str]:
    """The AWS principals a statement names ("*" for anyone)."""
    raw = stmt.get("Principal")
    if raw == "*":
        return ["*"]
    if isinstance(raw, dict):
        return as_strings(raw.get("AWS"))
    return []


def _restricted(stmt: Mapping[str, Any]) -> bool:
    """True when a condition ties the statement to the organisation, a network or a source."""
    condition = stmt.get("Condition")
    if not isinstance(condition, dict):
        return False
    for clauses in condition.values():
        if isinstance(clauses, dict) and any(str(k).lower() in RESTRICTING_CONDITION_KEYS for k in clauses):
            return True
    return False


def _external_id(stmt: Mapping[str, Any]) -> bool:
    condition = stmt.get("Condition")
    if not isinstance(condition, dict):
        return False
    return any(
        isinstance(clauses, dict) and any(str(k).lower() == "sts:externalid" for k in clauses)
        for clauses in condition.values()
    )


def _unknown(account: str | None, call: Call, ctx: EffectContext) -> bool:
    return account is not None and account != call.account_id and account not in ctx.known_accounts


def _target(call: Call, ctx: EffectContext, kind: str, name: str) -> str:
    """How a description names the principal a grant went to."""
    if not name:
        return ""
    if name == call.caller_name and call.caller_type in ("IAMUser", "AssumedRole", ""):
        return f" to itself ({kind} {name})"
    if name in ctx.recent_principals:
        return f" to {kind} {name}, created shortly before"
    return f" to {kind} {name}"


# ---------------------------------------------------------------------------------------------
# Checks (one per ``check`` value of effects.csv)


def _admin_statement(stmt: Mapping[str, Any]) -> str | None:
    """``admin`` or ``broad:<actions>`` when an Allow statement grants that much, else None."""
    if not _allows(stmt):
        return None
    actions = as_strings(stmt.get("Action"))
    resources_ = as_strings(stmt.get("Resource"))
    if any(a in ("*", "*:*") or a.lower() == "iam:*" for a in actions):
        return "admin"
    if "NotAction" in stmt and "*" in resources_:
        return "admin"
    if "*" in resources_:
        broad = [a for a in actions if ":" in a and a.split(":", 1)[1] in _WRITE_WILDCARDS]
        if broad:
            return "broad:" + ", ".join(sorted(broad))
    return None


def _document_grants(doc: Mapping[str, Any] | None) -> str | None:
    found = [v for v in (_admin_statement(s) for s in statements(doc)) if v]
    if "admin" in found:
        return "admin"
    return found[0] if found else None


def _kind_of(param: str) -> str:
    return {"userName": "user", "roleName": "role", "groupName": "group"}.get(param, "principal")


def check_managed_policy(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A managed admin policy attached to a user, role or group."""
    arn = call.request.get("policyArn")
    if not isinstance(arn, str) or last_segment(arn) not in ADMIN_MANAGED_POLICIES:
        return []
    name = str(call.request.get(rule.param) or "")
    kind = _kind_of(rule.param)
    return [
        Hit(
            kind="admin_grant",
            description=f"attached {last_segment(arn)}{_target(call, ctx, kind, name)}",
            resources=(arn,),
            counterparties=(name,) if name else (),
        )
    ]


def check_inline_policy(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """An inline policy granting admin or broad write access."""
    grants = _document_grants(policy_document(call.request.get("policyDocument")))
    if grants is None:
        return []
    name = str(call.request.get(rule.param) or "")
    kind = _kind_of(rule.param)
    policy = str(call.request.get("policyName") or "")
    what = (
        "an inline policy allowing every action"
        if grants == "admin"
        else f"an inline policy allowing {grants[6:]} on every resource"
    )
    named = f" ({policy})" if policy else ""
    return [
        Hit(
            kind="admin_grant" if grants == "admin" else "broad_grant",
            description=f"put {what}{named}{_target(call, ctx, kind, name)}",
            resources=(policy,) if policy else (),
            counterparties=(name,) if name else (),
        )
    ]


def check_policy_version(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A new default version of a customer policy that grants admin or broad write access."""
    grants = _document_grants(policy_document(call.request.get("policyDocument")))
    if grants is None:
        return []
    arn = str(call.request.get("policyArn") or "")
    default = call.request.get("setAsDefault") is True
    what = "every action" if grants == "admin" else f"{grants[6:]} on every resource"
    description = f"made policy {last_segment(arn) or '?'} allow {what}" + (
        "" if default else " (new version, not set as default)"
    )
    return [
        Hit(
            kind="admin_grant" if grants == "admin" and default else "broad_grant",
            description=description,
            resources=(arn,) if arn else (),
        )
    ]


def check_trust_policy(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A role's trust policy letting anyone, or an account outside the organisation, assume it."""
    doc = policy_document(call.request.get(rule.param))
    role = str(call.request.get("roleName") or "")
    hits: list[Hit] = []
    outside: list[str] = []
    external_id = False
    for stmt in statements(doc):
        if not _allows(stmt):
            continue
        for principal in _principals(stmt):
            if principal == "*":
                conditioned = " (with conditions)" if isinstance(stmt.get("Condition"), dict) else ""
                hits.append(
                    Hit(
                        kind="public_trust",
                        description=f"let anyone assume role {role or '?'}{conditioned}",
                        resources=(role,) if role else (),
                        counterparties=("*",),
                    )
                )
            elif _unknown(account_of(principal), call, ctx):
                outside.append(str(account_of(principal)))
                external_id = external_id or _external_id(stmt)
    if outside:
        accounts = sorted(set(outside))
        with_id = " with an external id" if external_id else ""
        hits.append(
            Hit(
                kind="outside_trust",
                description=f"let account {', '.join(accounts)} assume role {role or '?'}{with_id}",
                resources=(role,) if role else (),
                counterparties=tuple(accounts),
            )
        )
    return hits[:2]


def check_credential_for_other(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """An access key or console password created for a user other than the caller."""
    user = call.request.get("userName")
    if not isinstance(user, str) or not user:
        return []  # no user name: the caller's own credential
    if call.caller_type == "IAMUser" and user == call.caller_name:
        return []
    if call.caller_type == "AssumedRole" and user == call.session_name:
        return []  # a person's session acting on the person's own user
    if call.event_name == "UpdateLoginProfile" and call.request.get("passwordResetRequired") is True:
        return []  # a reset the user must complete: the caller does not keep the password
    new = ", created shortly before" if user in ctx.recent_principals else ""
    if call.event_name == "CreateAccessKey":
        key = field_at(call.response, "accessKey.accessKeyId")
        key_text = f" {key}" if isinstance(key, str) and key else ""
        return [
            Hit(
                kind="credential_for_other",
                description=f"created access key{key_text} for user {user}{new}",
                resources=(user,),
                counterparties=(key,) if isinstance(key, str) and key else (user,),
            )
        ]
    verb = "set a new console password" if call.event_name == "UpdateLoginProfile" else "created a console password"
    return [Hit(kind="credential_for_other", description=f"{verb} for user {user}{new}", resources=(user,))]


def _share(call: Call, ctx: EffectContext, what: str, resource: str, targets: Iterable[str]) -> list[Hit]:
    accounts: list[str] = []
    public = False
    for t in targets:
        if t.lower() == "all":
            public = True
        elif _unknown(account_of(t), call, ctx):
            accounts.append(str(account_of(t)))
    hits = []
    if public:
        hits.append(Hit(kind="public_share", description=f"made {what} {resource} public", resources=(resource,)))
    if accounts:
        unique = sorted(set(accounts))
        hits.append(
            Hit(
                kind="external_share",
                description=f"shared {what} {resource} with account {', '.join(unique)}",
                resources=(resource,),
                counterparties=tuple(unique),
            )
        )
    return hits


def check_permission_items(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """EC2 snapshot / AMI permissions added for accounts (``userId``) or everyone (``group: all``)."""
    permission = call.request.get(rule.param)
    added = field_at(permission, "add.items") if isinstance(permission, dict) else None
    if not isinstance(added, list):
        return []
    targets: list[str] = []
    for item in added:
        if isinstance(item, dict):
            targets += as_strings(item.get("userId"))
            targets += as_strings(item.get("group"))
    is_snapshot = "snapshotId" in call.request
    resource = str(call.request.get("snapshotId") or call.request.get("imageId") or "?")
    return _share(call, ctx, "snapshot" if is_snapshot else "image", resource, targets)


def check_restore_values(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """RDS snapshot ``restore`` attribute given to accounts or ``all``."""
    if str(call.request.get("attributeName", "")).lower() != "restore":
        return []
    resource = str(call.request.get("dBSnapshotIdentifier") or call.request.get("dBClusterSnapshotIdentifier") or "?")
    return _share(call, ctx, "RDS snapshot", resource, as_strings(call.request.get("valuesToAdd")))


def check_kms_grant(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A KMS grant to a principal of an unknown account."""
    grantee = call.request.get("granteePrincipal")
    if not isinstance(grantee, str):
        return []
    key = str(call.request.get("keyId") or "?")
    if grantee == "*":
        return _share(call, ctx, "KMS key", key, ["all"])
    return _share(call, ctx, "KMS key", key, [grantee])


def _resource_name(call: Call) -> str:
    for name in ("bucketName", "keyId", "repositoryName", "secretId", "queueUrl", "topicArn", "functionName"):
        value = call.request.get(name)
        if isinstance(value, str) and value:
            return last_segment(value) if name in ("queueUrl",) else value
    return "?"


def _resource_type(call: Call) -> str:
    return {
        "s3": "bucket",
        "kms": "KMS key",
        "ecr": "repository",
        "secretsmanager": "secret",
        "sqs": "queue",
        "sns": "topic",
        "lambda": "function",
    }.get(call.event_source.split(".", 1)[0], "resource")


def check_resource_policy(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A resource policy allowing anyone (without a restricting condition) or an unknown account."""
    doc = policy_document(field_at(call.request, rule.param))
    targets: list[str] = []
    for stmt in statements(doc):
        if not _allows(stmt):
            continue
        for principal in _principals(stmt):
            if principal == "*":
                if not _restricted(stmt):
                    targets.append("all")
            else:
                targets.append(principal)
    return _share(call, ctx, _resource_type(call), _resource_name(call), targets)


def check_lambda_permission(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A Lambda function permission for anyone or an unknown account."""
    principal = call.request.get("principal")
    if not isinstance(principal, str):
        return []
    conditioned = any(call.request.get(k) for k in ("sourceArn", "sourceAccount", "principalOrgID"))
    if principal == "*" and conditioned:
        return []
    return _share(call, ctx, "function", _resource_name(call), ["all" if principal == "*" else principal])


def check_bucket_acl(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A bucket ACL granting all users or all authenticated AWS users."""
    bucket = _resource_name(call)
    canned = call.request.get("x-amz-acl")
    if any(str(c).lower() in _PUBLIC_CANNED_ACLS for c in as_strings(canned)):
        return _share(call, ctx, "bucket", bucket, ["all"])
    grants = field_at(call.request, "AccessControlPolicy.AccessControlList.Grant")
    items = grants if isinstance(grants, list) else [grants]
    for grant in items:
        uri = field_at(grant, "Grantee.URI") if isinstance(grant, dict) else None
        if isinstance(uri, str) and uri.rstrip("/").rsplit("/", 1)[-1] in _PUBLIC_ACL_URIS:
            return _share(call, ctx, "bucket", bucket, ["all"])
    return []


def check_public_access_block(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A bucket's or the account's public access block removed, or one of its settings turned off."""
    scope = f"bucket {_resource_name(call)}" if "bucketName" in call.request else "the account"
    if call.event_name.startswith("Delete"):
        return [
            Hit(
                kind="public_access_block_off",
                description=f"removed the public access block of {scope}",
                resources=(scope.removeprefix("bucket "),),
            )
        ]
    config = call.request.get("PublicAccessBlockConfiguration")
    if not isinstance(config, dict):
        return []
    off = sorted(k for k, v in config.items() if v is False or str(v).lower() == "false")
    if not off:
        return []
    return [
        Hit(
            kind="public_access_block_off",
            description=f"turned off {', '.join(off)} in the public access block of {scope}",
            resources=(scope.removeprefix("bucket "),),
        )
    ]


def _ports(item: Mapping[str, Any]) -> tuple[str, bool]:
    """(ports in words, whether only web ports) of one ingress permission."""
    protocol = str(item.get("ipProtocol", item.get("IpProtocol", "")))
    low, high = item.get("fromPort", item.get("FromPort")), item.get("toPort", item.get("ToPort"))
    if protocol in ("-1", "all") or not isinstance(low, int) or not isinstance(high, int):
        return "all ports", False
    if low == high:
        return f"{protocol} port {low}", low in _WEB_PORTS
    if low <= 0 and high >= 65535:
        return f"all {protocol} ports", False
    return f"{protocol} ports {low}-{high}", False


def _open_ranges(item: Mapping[str, Any]) -> list[str]:
    ranges: list[str] = []
    for outer, inner in (("ipRanges", "cidrIp"), ("ipv6Ranges", "cidrIpv6")):
        listed = field_at(item, f"{outer}.items")
        for r in listed if isinstance(listed, list) else []:
            if isinstance(r, dict):
                ranges += as_strings(r.get(inner))
    for key in ("cidrIp", "CidrIpv4", "CidrIpv6", "cidrIpv6"):
        ranges += as_strings(item.get(key))
    return [r for r in ranges if r in ("0.0.0.0/0", "::/0")]


def check_ingress(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """Security group ingress from ``0.0.0.0/0`` or ``::/0``."""
    group_id = call.request.get("groupId") or call.request.get("GroupId") or call.request.get("groupName")
    group = str(group_id) if group_id else ""
    items: list[Mapping[str, Any]] = []
    listed = field_at(call.request, "ipPermissions.items")
    items += [i for i in listed if isinstance(i, dict)] if isinstance(listed, list) else []
    if "cidrIp" in call.request:  # the flat (classic) request form
        items.append(call.request)
    rules = field_at(call.request, "ModifySecurityGroupRulesRequest.SecurityGroupRule")
    for r in rules if isinstance(rules, list) else [rules]:
        body = r.get("SecurityGroupRule") if isinstance(r, dict) else None
        if isinstance(body, dict):
            items.append(body)
    hits: list[Hit] = []
    for item in items:
        opened = _open_ranges(item)
        if not opened:
            continue
        ports, web = _ports(item)
        hits.append(
            Hit(
                kind="network_open_web" if web else "network_open",
                description=f"opened {ports} of {f'security group {group}' if group else 'a security group'} "
                f"to {', '.join(sorted(set(opened)))}",
                resources=(group,) if group else (),
                counterparties=tuple(sorted(set(opened))),
            )
        )
    return hits


def _flow_log_ids(request: Mapping[str, Any]) -> list[str]:
    ids = as_strings(request.get("flowLogIds")) + as_strings(request.get("FlowLogIds"))
    raw = field_at(request, "DeleteFlowLogsRequest.FlowLogId")
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, dict):
            ids += as_strings(item.get("content"))
        ids += as_strings(item)
    return ids


def _named_targets(call: Call, rule: Rule) -> list[str]:
    if call.event_name == "DeleteFlowLogs":
        return _flow_log_ids(call.request)
    value = call.request.get(rule.param) if rule.param else None
    return [last_segment(v) for v in as_strings(value)]


def _said(call: Call, rule: Rule, kind: str) -> list[Hit]:
    names = _named_targets(call, rule)
    target = f" {', '.join(names)}" if names else ""
    words = rule.words or f"called {call.event_name}"
    return [Hit(kind=kind, description=f"{words}{target}", resources=tuple(names))]


def check_logging_off(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """Logging or monitoring turned off (the call itself is the effect; ``words`` say what it did)."""
    return _said(call, rule, "logging_off")


def check_monitoring_narrowed(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """Monitoring narrowed (Security Hub standards disabled, GuardDuty left by its administrator …)."""
    return _said(call, rule, "logging_narrowed")


def check_trusted_ip_list(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """An active GuardDuty trusted IP list: GuardDuty raises nothing for its addresses."""
    if call.request.get("activate") is False:
        return []
    return _said(call, rule, "logging_narrowed")


def check_archive_filter(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A GuardDuty filter that archives the findings it matches as they come."""
    if str(call.request.get("action", "")).upper() != "ARCHIVE":
        return []
    name = call.request.get("name")
    named = f" {name}" if isinstance(name, str) and name else ""
    return [
        Hit(
            kind="logging_narrowed",
            description=f"{rule.words or 'added a GuardDuty filter that archives findings'}{named}",
            resources=(name,) if isinstance(name, str) and name else (),
        )
    ]


def check_org_leave(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """The account left its AWS Organization (its SCPs and organisation trail no longer apply)."""
    account = call.account_id or "the account"
    return [Hit(kind="org_leave", description=f"took account {account} out of its organization")]


def check_event_selectors(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """CloudTrail event selectors that log less than every management event."""
    trail = last_segment(str(call.request.get(rule.param) or "?"))
    narrowed: list[str] = []
    selectors = call.request.get("eventSelectors")
    advanced = call.request.get("advancedEventSelectors")
    if isinstance(selectors, list):
        readable = [s for s in selectors if isinstance(s, dict)]
        if not readable:
            narrowed.append("no event selectors")
        elif all(s.get("includeManagementEvents") is False for s in readable):
            narrowed.append("management events off")
        for s in readable:
            rw = s.get("readWriteType")
            if isinstance(rw, str) and rw != "All":
                narrowed.append(f"only {rw} events")
            if as_strings(s.get("excludeManagementEventSources")):
                narrowed.append("excluding " + ", ".join(as_strings(s.get("excludeManagementEventSources"))))
    elif isinstance(advanced, list):
        text = json.dumps(advanced).lower()
        if "management" not in text:
            narrowed.append("management events off")
    if not narrowed:
        return []
    return [
        Hit(
            kind="logging_narrowed",
            description=f"narrowed trail {trail}: {', '.join(dict.fromkeys(narrowed))}",
            resources=(trail,),
        )
    ]


def check_update_trail(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """A trail made single-region, without global events or without log file validation."""
    trail = last_segment(str(call.request.get(rule.param) or "?"))
    changes = [
        words
        for key, words in (
            ("isMultiRegionTrail", "one region only"),
            ("includeGlobalServiceEvents", "no global service events"),
            ("enableLogFileValidation", "no log file validation"),
        )
        if call.request.get(key) is False
    ]
    if not changes:
        return []
    return [
        Hit(kind="logging_narrowed", description=f"narrowed trail {trail}: {', '.join(changes)}", resources=(trail,))
    ]


def check_detector_disabled(call: Call, rule: Rule, ctx: EffectContext) -> list[Hit]:
    """GuardDuty detector set to ``enable: false``."""
    if call.request.get("enable") is not False:
        return []
    detector = str(call.request.get(rule.param) or "?")
    return [Hit(kind="logging_off", description=f"disabled GuardDuty detector {detector}", resources=(detector,))]


CHECKS: dict[str, Check] = {
    "managed_policy": check_managed_policy,
    "inline_policy": check_inline_policy,
    "policy_version": check_policy_version,
    "trust_policy": check_trust_policy,
    "credential_for_other": check_credential_for_other,
    "permission_items": check_permission_items,
    "restore_values": check_restore_values,
    "kms_grant": check_kms_grant,
    "resource_policy": check_resource_policy,
    "lambda_permission": check_lambda_permission,
    "bucket_acl": check_bucket_acl,
    "public_access_block": check_public_access_block,
    "ingress": check_ingress,
    "logging_off": check_logging_off,
    "monitoring_narrowed": check_monitoring_narrowed,
    "trusted_ip_list": check_trusted_ip_list,
    "archive_filter": check_archive_filter,
    "org_leave": check_org_leave,
    "event_selectors": check_event_selectors,
    "update_trail": check_update_trail,
    "detector_disabled": check_detector_disabled,
}
"""The recognisers named in ``effects.csv``'s ``check`` column."""


# ---------------------------------------------------------------------------------------------
# Tables


def _rows(name: str, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    text = resources.files("trailsight.enrich.catalog").joinpath(name).read_text(encoding="utf-8")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line and not line.startswith("#")]
    reader = csv.DictReader(line for _, line in lines)
    if tuple(reader.fieldnames or ()) != tuple(columns):
        raise ConfigError(f"{name}: header must be {','.join(columns)}")
    return [(lines[i + 1][0], row) for i, row in enumerate(reader)]


@cache
def load_kinds() -> dict[str, EffectKind]:
    """``effect_kinds.csv``, by kind."""
    kinds: dict[str, EffectKind] = {}
    for lineno, row in _rows(KINDS_FILE, KINDS_COLUMNS):
        where = f"{KINDS_FILE}:{lineno}"
        if row["tactic"] not in TACTICS:
            raise ConfigError(f"{where}: unknown tactic {row['tactic']!r}")
        if row["severity"] not in ("Low", "Medium", "High"):
            raise ConfigError(f"{where}: severity must be Low, Medium or High")
        if row["kind"] in kinds:
            raise ConfigError(f"{where}: duplicate kind {row['kind']!r}")
        kinds[row["kind"]] = EffectKind(
            kind=row["kind"],
            tactic=row["tactic"],
            technique=row["technique"],
            severity=row["severity"],
        )
    return kinds


@cache
def load_rules() -> dict[tuple[str, str], Rule]:
    """``effects.csv``, by (event_source, event_name)."""
    rules: dict[tuple[str, str], Rule] = {}
    for lineno, row in _rows(EFFECTS_FILE, EFFECTS_COLUMNS):
        where = f"{EFFECTS_FILE}:{lineno}"
        if row["check"] not in CHECKS:
            raise ConfigError(f"{where}: unknown check {row['check']!r}")
        key = (row["event_source"], row["event_name"])
        if key in rules:
            raise ConfigError(f"{where}: duplicate entry {key[0]}:{key[1]}")
        rules[key] = Rule(
            check=row["check"],
            param=row["param"],
            resource_type=row["resource_type"],
            technique=row["technique"] or None,
            words=row["words"],
        )
    return rules


def rule_for(event_source: str | None, event_name: str | None) -> Rule | None:
    """The ``effects.csv`` row of an API (Lambda's versioned names without their date suffix), or None."""
    rules = load_rules()
    source, name = event_source or "", event_name or ""
    return rules.get((source, name)) or rules.get((source, base_event_name(name)))


def watched(event_source: str | None, event_name: str | None) -> bool:
    """True when ``effects.csv`` has a check for this API (only such calls can have effects)."""
    return rule_for(event_source, event_name) is not None


# ---------------------------------------------------------------------------------------------
# Entry points


def effects_of(call: Call, context: EffectContext | None = None) -> list[Effect]:
    """The effects of one call (empty for APIs ``effects.csv`` does not list); never raises on bad input."""
    rule = rule_for(call.event_source, call.event_name)
    if rule is None:
        return []
    ctx = context or EffectContext()
    try:
        hits = CHECKS[rule.check](call, rule, ctx)
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError):
        return []  # a request shape no check expected: no effect rather than a failed run
    kinds = load_kinds()
    out: list[Effect] = []
    for hit in hits:
        kind = kinds[hit.kind]
        failed = f" (failed: {call.error_code})" if call.error_code else ""
        out.append(
            Effect(
                kind=hit.kind,
                tactic=kind.tactic,
                technique=rule.technique or kind.technique,
                description=("tried: " if call.error_code else "") + hit.description + failed,
                succeeded=not call.error_code,
                resources=tuple(r for r in hit.resources if r and r != "?"),
                counterparties=hit.counterparties,
                resource_type=rule.resource_type,
            )
        )
    return out


def call_from(
    *,
    event_source: str | None,
    event_name: str | None,
    request_parameters: Any,
    response_elements: Any = None,
    error_code: str | None = None,
    account_id: str | None = None,
    caller: str | None = None,
    caller_type: str | None = None,
    session_name: str | None = None,
) -> Call:
    """A :class:`Call` from an event's columns (request and response as JSON text or objects)."""
    return Call(
        event_source=event_source or "",
        event_name=event_name or "",
        request=as_mapping(request_parameters),
        response=as_mapping(response_elements),
        error_code=error_code or None,
        account_id=account_id or "",
        caller=caller or "",
        caller_type=caller_type or "",
        session_name=session_name or "",
    )


def created_principal(call: Call) -> str | None:
    """The user or role name a successful ``CreateUser`` / ``CreateRole`` created, else None."""
    if call.error_code or call.event_source != "iam.amazonaws.com":
        return None
    key = {"CreateUser": "userName", "CreateRole": "roleName"}.get(call.event_name)
    value = call.request.get(key) if key else None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, kw_only=True)
class CallEffects:
    """The effects of one call in a sequence, with the call's event id."""

    event_id: str
    effects: list[Effect] = field(default_factory=list)


def effects_of_sequence(calls: Sequence[tuple[str, Call]], known_accounts: Iterable[str] = ()) -> list[CallEffects]:
    """Effects of calls in time order; principals created earlier in the sequence count as new."""
    known = frozenset(known_accounts)
    created: set[str] = set()
    out: list[CallEffects] = []
    for event_id, call in calls:
        ctx = EffectContext(known_accounts=known, recent_principals=frozenset(created))
        found = effects_of(call, ctx)
        if found:
            out.append(CallEffects(event_id=event_id, effects=found))
        name = created_principal(call)
        if name:
            created.add(name)
    return out


__all__ = [
    "ADMIN_MANAGED_POLICIES",
    "CHECKS",
    "RESTRICTING_CONDITION_KEYS",
    "Call",
    "CallEffects",
    "Effect",
    "EffectContext",
    "EffectKind",
    "account_of",
    "call_from",
    "created_principal",
    "effects_of",
    "effects_of_sequence",
    "load_kinds",
    "load_rules",
    "parse_json",
    "policy_document",
    "rule_for",
    "watched",
]
