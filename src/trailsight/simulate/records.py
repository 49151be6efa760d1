"""Build CloudTrail records the way AWS writes them.

This module knows the record contents (``eventVersion``, ``userIdentity`` of each
type, ``tlsDetails``, error codes and messages per service protocol ...); the
rest of the simulator says *who* calls *what* *when* from *where*, and this
module turns that into one record ``dict`` with the keys in the order CloudTrail
writes them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Event sources recorded in us-east-1 whatever region the caller uses.
GLOBAL_SOURCES = frozenset(
    {"iam", "sts-global", "signin", "organizations", "ce", "support", "health", "account", "cloudfront", "route53"}
)

#: Prefix of the IAM action for event sources whose IAM prefix differs.
IAM_PREFIX = {"monitoring": "cloudwatch", "sts-global": "sts", "elasticloadbalancing": "elasticloadbalancing"}

#: Services using the query protocol (``AccessDenied``) rather than JSON (``AccessDeniedException``).
_QUERY_PROTOCOL = frozenset(
    {"iam", "sts", "sts-global", "s3", "rds", "cloudformation", "sqs", "sns", "elasticloadbalancing", "autoscaling"}
)

_READ_VERBS = (
    "Describe",
    "Get",
    "List",
    "Lookup",
    "Head",
    "Search",
    "Scan",
    "Query",
    "Simulate",
    "BatchGet",
    "Decrypt",
    "GenerateDataKey",
    "AssumeRole",
    "InvokeModel",
    "Check",
    "Estimate",
    "Test",
    "Validate",
    "Filter",
)

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")

TLS_CHOICES = (
    ("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
    ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
)


def is_read_only(event_name: str) -> bool:
    """Return CloudTrail's ``readOnly`` for an API name (by its verb)."""
    return event_name.startswith(_READ_VERBS)


def event_source(service: str) -> str:
    """Return the ``eventSource`` host of a service key (``sts-global`` is ``sts``)."""
    return ("sts" if service == "sts-global" else service) + ".amazonaws.com"


def record_region(service: str, region: str) -> str:
    """Return the region CloudTrail records a call in (global services go to us-east-1)."""
    return "us-east-1" if service in GLOBAL_SOURCES else region


def iam_action(service: str, event_name: str) -> str:
    """Return the IAM action (``lambda:ListFunctions``) for an event (``ListFunctions20150331``)."""
    name = re.sub(r"20\d{6}$", "", event_name)
    return f"{IAM_PREFIX.get(service, service)}:{name}"


def kebab(event_name: str) -> str:
    """``DescribeInstances`` → ``describe-instances`` (the CLI's command name)."""
    return _CAMEL.sub("-", re.sub(r"20\d{6}$", "", event_name)).lower()


def key_id(rng: random.Random, prefix: str) -> str:
    """Return an AWS-style identifier: a 4-letter prefix and 16 base-32 characters."""
    return prefix + "".join(rng.choice(_B32) for _ in range(16))


def new_uuid(rng: random.Random) -> str:
    """Return a version-4 UUID drawn from ``rng`` (deterministic per seed)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"


def iso(ts: float) -> str:
    """Format epoch seconds as CloudTrail's ``2025-03-03T20:19:06Z``."""
    sec = int(ts)
    hour = sec - sec % 3600
    prefix = _HOURS.get(hour)
    if prefix is None:
        prefix = _HOURS[hour] = datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:")
    rest = sec - hour
    return f"{prefix}{rest // 60:02d}:{rest % 60:02d}Z"


_HOURS: dict[int, str] = {}


@dataclass(kw_only=True)
class Identity:
    """Who makes a call: the ``userIdentity`` object plus the keys labels need."""

    user_identity: dict[str, Any]
    principal: str  # the identity key (schema.py): user ARN, role ARN, root ARN, service host
    actor: str
    arn: str  # the ARN error messages name (session ARN for assumed roles)
    account_id: str
    extra: dict[str, Any] = field(default_factory=dict)


def iam_user(account: str, name: str, principal_id: str, access_key: str | None) -> Identity:
    """An IAM user calling with a long-term access key (AKIA...)."""
    arn = f"arn:aws:iam::{account}:user/{name}"
    ui: dict[str, Any] = {"type": "IAMUser", "principalId": principal_id, "arn": arn, "accountId": account}
    if access_key:
        ui["accessKeyId"] = access_key
    ui["userName"] = name
    return Identity(user_identity=ui, principal=arn, actor=arn, arn=arn, account_id=account)


def iam_user_console(
    account: str, name: str, principal_id: str, session_key: str, created: float, mfa: bool
) -> Identity:
    """An IAM user in a console session (temporary ASIA key, sessionContext attributes)."""
    arn = f"arn:aws:iam::{account}:user/{name}"
    ui: dict[str, Any] = {
        "type": "IAMUser",
        "principalId": principal_id,
        "arn": arn,
        "accountId": account,
        "accessKeyId": session_key,
        "userName": name,
        "sessionContext": {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": iso(created), "mfaAuthenticated": "true" if mfa else "false"},
        },
    }
    return Identity(user_identity=ui, principal=arn, actor=arn, arn=arn, account_id=account)


def role_arn(account: str, name: str, path: str = "/") -> str:
    """Return the IAM role ARN with its path."""
    return f"arn:aws:iam::{account}:role{path}{name}"


def assumed_role(
    account: str,
    role_name: str,
    role_path: str,
    role_id: str,
    session_name: str,
    session_key: str,
    created: float,
    *,
    mfa: bool = False,
    invoked_by: str | None = None,
    web_identity: dict[str, Any] | None = None,
    stable_session: bool = False,
) -> Identity:
    """A role session (``AssumedRole``) with ``sessionContext.sessionIssuer`` and attributes."""
    issuer_arn = role_arn(account, role_name, role_path)
    session_arn = f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"
    ui: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session_name}",
        "arn": session_arn,
        "accountId": account,
        "accessKeyId": session_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": issuer_arn,
                "accountId": account,
                "userName": role_name,
            },
            "webIdFederationData": web_identity or {},
            "attributes": {"creationDate": iso(created), "mfaAuthenticated": "true" if mfa else "false"},
        },
    }
    if invoked_by:
        ui["invokedBy"] = invoked_by
    actor = f"{issuer_arn}/{session_name}" if stable_session else issuer_arn
    return Identity(user_identity=ui, principal=issuer_arn, actor=actor, arn=session_arn, account_id=account)


def root(account: str, access_key: str | None, created: float | None = None, mfa: bool = True) -> Identity:
    """The account's root user."""
    arn = f"arn:aws:iam::{account}:root"
    ui: dict[str, Any] = {"type": "Root", "principalId": account, "arn": arn, "accountId": account}
    if access_key:
        ui["accessKeyId"] = access_key
    if created is not None:
        ui["sessionContext"] = {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": iso(created), "mfaAuthenticated": "true" if mfa else "false"},
        }
    return Identity(user_identity=ui, principal=arn, actor=arn, arn=arn, account_id=account)


def aws_service(host: str, account: str) -> Identity:
    """An AWS service acting on the account's behalf (``AWSService`` with ``invokedBy``)."""
    return Identity(
        user_identity={"type": "AWSService", "invokedBy": host},
        principal=host,
        actor=host,
        arn=host,
        account_id=account,
    )


def web_identity_user(account: str, provider: str, subject: str) -> Identity:
    """A web-identity caller (GitHub Actions OIDC) before it holds role credentials."""
    provider_arn = f"arn:aws:iam::{account}:oidc-provider/{provider}"
    ui = {
        "type": "WebIdentityUser",
        "principalId": f"{provider_arn}:sts.amazonaws.com:{subject}",
        "userName": subject,
        "identityProvider": provider_arn,
    }
    return Identity(user_identity=ui, principal=provider_arn, actor=subject, arn=provider_arn, account_id=account)


def aws_account(caller_account: str, principal_id: str, recipient: str) -> Identity:
    """Another account's principal calling into this one (cross-account AssumeRole)."""
    ui = {"type": "AWSAccount", "principalId": principal_id, "accountId": caller_account}
    arn = f"arn:aws:iam::{caller_account}:root"
    return Identity(user_identity=ui, principal=arn, actor=arn, arn=arn, account_id=recipient)


# ---------------------------------------------------------------------------
# Errors


def error_for(
    rng: random.Random, kind: str, service: str, event_name: str, caller_arn: str, resource: str = "*"
) -> tuple[str, str | None]:
    """Return ``(errorCode, errorMessage)`` for an error kind as the service would write it."""
    action = iam_action(service, event_name)
    if kind == "denied":
        if service == "ec2":
            blob = "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(96)
            )
            return (
                "Client.UnauthorizedOperation",
                f"You are not authorized to perform this operation. User: {caller_arn} is not authorized to perform: "
                f"{action} because no identity-based policy allows the {action} action. "
                f"Encoded authorization failure message: {blob}",
            )
        code = "AccessDenied" if service in _QUERY_PROTOCOL else "AccessDeniedException"
        on = f" on resource: {resource}" if resource != "*" else ""
        return (
            code,
            f"User: {caller_arn} is not authorized to perform: {action}{on} "
            f"because no identity-based policy allows the {action} action",
        )
    if kind == "throttle":
        if service == "ec2":
            return "Client.RequestLimitExceeded", "Request limit exceeded."
        return ("Throttling" if service in _QUERY_PROTOCOL else "ThrottlingException"), "Rate exceeded"
    if kind == "notfound":
        return _NOT_FOUND.get(service, ("ResourceNotFoundException", "Requested resource not found"))
    if kind == "limit":
        return "Client.VcpuLimitExceeded", (
            "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance "
            "bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/"
            "ec2-request to request an adjustment to this limit."
        )
    if kind == "capacity":
        return "Server.InsufficientInstanceCapacity", (
            "We currently do not have sufficient capacity in the Availability Zone you requested."
        )
    if kind == "optin":
        return "AuthFailure", "AWS was not able to validate the provided access credentials"
    raise ValueError(f"unknown error kind {kind!r}")


_NOT_FOUND: dict[str, tuple[str, str | None]] = {
    "iam": ("NoSuchEntityException", "The role with name legacy-deployer cannot be found."),
    "s3": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "ec2": ("Client.InvalidInstanceID.NotFound", "The instance ID 'i-0a1b2c3d4e5f60718' does not exist"),
    "ssm": ("ParameterNotFound", None),
    "logs": ("ResourceNotFoundException", "The specified log group does not exist."),
    "dynamodb": ("ResourceNotFoundException", "Requested resource not found"),
    "secretsmanager": ("ResourceNotFoundException", "Secrets Manager can't find the specified secret."),
    "lambda": ("ResourceNotFoundException", "Function not found"),
}


# ---------------------------------------------------------------------------
# Records


def build_record(
    *,
    rng: random.Random,
    identity: Identity,
    ts: float,
    service: str,
    event_name: str,
    region: str,
    source_ip: str,
    user_agent: str,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error: tuple[str, str | None] | None = None,
    console: bool = False,
    event_type: str = "AwsApiCall",
    resources: list[dict[str, str]] | None = None,
    additional: dict[str, Any] | None = None,
    read_only: bool | None = None,
    shared_event_id: str | None = None,
    recipient: str | None = None,
) -> dict[str, Any]:
    """Assemble one CloudTrail record (keys in CloudTrail's order)."""
    rec_region = record_region(service, region)
    src = event_source(service)
    rec: dict[str, Any] = {
        "eventVersion": "1.10" if service in ("iam", "s3", "kms", "sts", "sts-global") else "1.09",
        "userIdentity": identity.user_identity,
        "eventTime": iso(ts),
        "eventSource": src,
        "eventName": event_name,
        "awsRegion": rec_region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
    }
    if error is not None:
        rec["errorCode"] = error[0]
        rec["errorMessage"] = error[1]
    rec["requestParameters"] = request
    rec["responseElements"] = None if error is not None else response
    if additional is not None:
        rec["additionalEventData"] = additional
    if service == "s3":
        rec["requestID"] = f"{rng.getrandbits(64):016X}"
    else:
        rec["requestID"] = new_uuid(rng)
    rec["eventID"] = new_uuid(rng)
    rec["readOnly"] = is_read_only(event_name) if read_only is None else read_only
    if resources is not None:
        rec["resources"] = resources
    rec["eventType"] = event_type
    rec["managementEvent"] = True
    rec["recipientAccountId"] = recipient or identity.account_id
    if shared_event_id is not None:
        rec["sharedEventID"] = shared_event_id
    rec["eventCategory"] = "Management"
    caller_is_service = identity.user_identity.get("type") == "AWSService" or "invokedBy" in identity.user_identity
    if not caller_is_service and event_type == "AwsApiCall":
        tls_version, cipher = TLS_CHOICES[0] if rng.random() < 0.8 else TLS_CHOICES[1]
        host = (
            src if service in GLOBAL_SOURCES or service == "sts-global" else f"{src[:-14]}.{rec_region}.amazonaws.com"
        )
        rec["tlsDetails"] = {"tlsVersion": tls_version, "cipherSuite": cipher, "clientProvidedHostHeader": host}
    if console:
        rec["sessionCredentialFromConsole"] = "true"
    return rec
