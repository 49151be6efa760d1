"""Turn one CloudTrail record (a parsed JSON object) into one row of the normalised event.

This is the only module that knows CloudTrail's camelCase field names. It never
raises: a record either becomes a row or is rejected with a one-line reason, which
the pipeline writes to the quarantine.

Rules (also in docs/ingest.md):

* **Required:** ``eventTime`` (or ``@timestamp``, as OTRF / Elastic exports write it),
  an ISO 8601 string between 2000 and 2100 (a missing zone means UTC), and ``eventName``,
  a string. A record without them is rejected.
* **eventID:** when missing, a deterministic id ``ts-<32 hex>`` is made from a SHA-256
  of the record's JSON text, so re-ingesting the same record gives the same id.
* **Account:** ``recipientAccountId``, else ``userIdentity.accountId``, else the account
  in the file's S3 path, else ``unknown``. It names a lake folder, so it must match
  ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``; anything else is rejected.
* **Types:** a text field holding a number or boolean is kept as its text; one holding
  an object or array is rejected (``awsRegion is an object, expected a string``).
  ``userIdentity`` must be an object when present.
* **Sizes:** a record whose JSON text is over :data:`MAX_RECORD_BYTES` (1 MiB) is rejected;
  text fields longer than :data:`MAX_FIELD_CHARS` (8,192 characters, e.g. a 100 kB user
  agent) are cut to that length and the record is kept (``raw`` keeps the full text).

Identity keys (see :mod:`trailsight.schema`): ``principal`` is the IAM user ARN, the role
ARN for an assumed role (``sessionContext.sessionIssuer.arn``, or derived from the
assumed-role ARN when the issuer is missing), ``arn:aws:iam::ACCT:root`` for root, and
the service host for AWS services. ``actor`` is ``<role ARN>/<session name>`` for
``AWSReservedSSO_*`` roles and for roles whose session names look like stable
identifiers (an e-mail or a user name, not ``botocore-session-…``, an instance id, or
random hex), else the principal.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pyarrow as pa

from trailsight.schema import ENRICHMENT_FIELDS, EVENT_SCHEMA, RECORD_FIELDS

MAX_RECORD_BYTES: Final = 1 << 20
"""A record whose JSON text is longer than this is quarantined."""

MAX_FIELD_CHARS: Final = 8192
"""Text fields longer than this are cut to this many characters."""

UNKNOWN_ACCOUNT: Final = "unknown"
UNKNOWN_PRINCIPAL: Final = "unknown"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_DAY_US: Final = 86_400_000_000
_MIN_US: Final = (datetime(2000, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
_MAX_US: Final = (datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US

_ACCOUNT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ASSUMED_ROLE_RE: Final = re.compile(r"arn:([\w-]+):sts::([^:]*):assumed-role/([^/]+)/(.+)", re.DOTALL)
_SESSION_CHARS_RE: Final = re.compile(r"[\w+=,.@-]{2,64}")
_GENERATED_SESSION_RE: Final = re.compile(
    r"""
      ^botocore-session-\d+$
    | ^aws-(?:go|java|js|sdk|cli)[\w-]*?-?\d+$
    | ^i-[0-9a-f]{8,17}$
    | [0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}
    | \d{6,}
    | (?:^|[^0-9a-z])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{10,}(?:$|[^0-9a-z])
    | (?-i:(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{16,})
    """,
    re.IGNORECASE | re.VERBOSE,
)

#: Column names of the rows :func:`normalise_row` returns, in order.
ROW_COLUMNS: Final = tuple(f.name for f in RECORD_FIELDS)


class _Reject(Exception):
    """Internal: the record cannot be normalised; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that could not be normalised, and why (one line)."""

    reason: str


# Caches shared by every record of a process; bounded by _trim_caches.
_minute_cache: dict[str, int] = {}
_service_cache: dict[str, str] = {}
_session_cache: dict[str, bool] = {}
_valid_accounts: set[str] = set()


def _trim_caches() -> None:
    for cache in (_minute_cache, _service_cache, _session_cache):
        if len(cache) > 200_000:
            cache.clear()
    if len(_valid_accounts) > 200_000:
        _valid_accounts.clear()


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _text(value: object, name: str) -> str | None:
    """Slow path of the text-field check: coerce scalars, cut long strings, reject containers."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_FIELD_CHARS]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise _Reject(f"{name} is {_kind(value)}, expected a string")


def _micros(value: object, name: str) -> int:
    """Microseconds since the epoch (UTC) of a CloudTrail time string."""
    if type(value) is str and len(value) == 20 and value[19] == "Z" and value[16] == ":":
        base = _minute_cache.get(value[:16])
        if base is not None:
            sec = value[17:19]
            if sec.isascii() and sec.isdigit() and sec < "60":
                return base + int(sec) * 1_000_000
    if value is None:
        raise _Reject(f"missing {name}")
    if not isinstance(value, str):
        raise _Reject(f"{name} is {_kind(value)}, expected an ISO 8601 string")
    text = value.strip()
    if not text or len(text) > 64:
        raise _Reject(f"{name} is not a time: {value[:40]!r}")
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise _Reject(f"{name} is not an ISO 8601 time: {value[:40]!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    try:
        micros = (stamp - _EPOCH) // _ONE_US
    except OverflowError:
        raise _Reject(f"{name} is out of range: {value[:40]!r}") from None
    if not _MIN_US <= micros < _MAX_US:
        raise _Reject(f"{name} is not between 2000 and 2100: {value[:40]!r}")
    if len(value) == 20 and value[19] == "Z" and value[10] == "T" and stamp.microsecond == 0:
        _minute_cache[value[:16]] = micros - stamp.second * 1_000_000
    return micros


def _service(event_source: str | None) -> str | None:
    if event_source is None:
        return None
    service = _service_cache.get(event_source)
    if service is None:
        service = event_source.removesuffix(".amazonaws.com")
        _service_cache[event_source] = service
    return service


def is_stable_session_name(name: str) -> bool:
    """Whether a role session name looks like a stable identifier (an e-mail, a user name).

    Generated names — ``botocore-session-1689…``, instance ids, UUIDs, long digit runs
    (timestamps), random hex or mixed-case tokens — are not stable.
    """
    stable = _session_cache.get(name)
    if stable is None:
        stable = bool(_SESSION_CHARS_RE.fullmatch(name)) and _GENERATED_SESSION_RE.search(name) is None
        _session_cache[name] = stable
    return stable


def _dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _mfa(ui: dict[str, Any], record: dict[str, Any]) -> bool | None:
    ctx = _dict(ui.get("sessionContext"))
    if ctx is not None:
        attrs = _dict(ctx.get("attributes"))
        if attrs is not None:
            flag = attrs.get("mfaAuthenticated")
            if flag is not None:
                return flag is True or (isinstance(flag, str) and flag.lower() == "true")
    extra = _dict(record.get("additionalEventData"))
    if extra is not None:
        used = extra.get("MFAUsed")
        if isinstance(used, str):
            return used.lower() == "yes"
    return None


_Identity = tuple[
    str | None,  # identity_type
    str,  # principal
    str | None,  # principal_arn
    str | None,  # principal_name
    str,  # actor
    str | None,  # session_name
    str | None,  # access_key_id
    bool | None,  # mfa
    str | None,  # invoked_by
]


def _identity(raw_ui: object, record: dict[str, Any], account_id: str) -> _Identity:
    if raw_ui is None:
        return (None, UNKNOWN_PRINCIPAL, None, None, UNKNOWN_PRINCIPAL, None, None, None, None)
    if not isinstance(raw_ui, dict):
        raise _Reject(f"userIdentity is {_kind(raw_ui)}, expected an object")
    ui: dict[str, Any] = raw_ui
    itype = _text(ui.get("type"), "userIdentity.type")
    arn = _text(ui.get("arn"), "userIdentity.arn")
    ui_account = _text(ui.get("accountId"), "userIdentity.accountId") or account_id
    user_name = _text(ui.get("userName"), "userIdentity.userName")
    access_key = _text(ui.get("accessKeyId"), "userIdentity.accessKeyId")
    invoked_by = _text(ui.get("invokedBy"), "userIdentity.invokedBy")
    principal_id = _text(ui.get("principalId"), "userIdentity.principalId")
    session: str | None = None
    name: str | None = None
    actor: str | None = None

    if itype == "IAMUser":
        if arn:
            principal = arn
        elif user_name:
            principal = f"arn:aws:iam::{ui_account}:user/{user_name}"
        else:
            principal = f"iam-user:{principal_id or UNKNOWN_PRINCIPAL}"
        name = user_name or principal.rsplit("/", 1)[-1]
    elif itype == "AssumedRole":
        role_arn: str | None = None
        ctx = _dict(ui.get("sessionContext"))
        issuer = _dict(ctx.get("sessionIssuer")) if ctx is not None else None
        if issuer is not None:
            role_arn = _text(issuer.get("arn"), "sessionIssuer.arn")
            name = _text(issuer.get("userName"), "sessionIssuer.userName")
        match = _ASSUMED_ROLE_RE.fullmatch(arn) if arn else None
        if match is not None:
            session = match[4]
            if not role_arn:
                role_arn = f"arn:{match[1]}:iam::{match[2] or ui_account}:role/{match[3]}"
                name = match[3]
        if not session and principal_id and ":" in principal_id:
            session = principal_id.split(":", 1)[1]
        if role_arn:
            principal = role_arn
            name = name or role_arn.rsplit("/", 1)[-1]
        else:
            principal = arn or f"assumed-role:{principal_id or UNKNOWN_PRINCIPAL}"
            name = name or principal.rsplit("/", 1)[-1]
        if session:
            session = session[:MAX_FIELD_CHARS]
            if name and name.startswith("AWSReservedSSO_"):
                actor = f"{principal}/{session}"
                name = session
            elif is_stable_session_name(session):
                actor = f"{principal}/{session}"
    elif itype == "Root":
        partition = arn.split(":", 2)[1] if arn and arn.startswith("arn:") and arn.count(":") >= 2 else "aws"
        principal = f"arn:{partition}:iam::{ui_account}:root"
        name = "root"
    elif itype == "AWSService":
        source_ip = record.get("sourceIPAddress")
        if invoked_by:
            principal = invoked_by
        elif isinstance(source_ip, str) and source_ip.endswith(".amazonaws.com"):
            principal = source_ip[:MAX_FIELD_CHARS]
        else:
            principal = "aws-service"
        name = principal
    elif itype == "FederatedUser":
        principal = arn or f"federated-user:{principal_id or UNKNOWN_PRINCIPAL}"
        name = principal.rsplit("/", 1)[-1]
        session = name
    elif itype == "AWSAccount":
        principal = arn or f"aws-account:{ui_account}"
        name = ui_account
    elif itype in ("WebIdentityUser", "SAMLUser"):
        provider = _text(ui.get("identityProvider"), "userIdentity.identityProvider")
        who = user_name or principal_id or UNKNOWN_PRINCIPAL
        principal = arn or f"{'web-identity' if itype == 'WebIdentityUser' else 'saml'}:{provider or ''}:{who}"
        name = user_name or who
    elif itype == "IdentityCenterUser":
        behalf = _dict(ui.get("onBehalfOf"))
        user_id = _text(behalf.get("userId"), "onBehalfOf.userId") if behalf is not None else None
        store = _text(behalf.get("identityStoreArn"), "onBehalfOf.identityStoreArn") if behalf is not None else None
        principal = arn or f"identity-center:{store or ''}:{user_id or principal_id or UNKNOWN_PRINCIPAL}"
        name = user_name or user_id
    else:
        # No or an unknown type: AWS services often leave only ``invokedBy`` (secretsmanager, ec2).
        someone = user_name or principal_id
        fallback = f"{itype or 'unknown'}:{someone}" if someone else UNKNOWN_PRINCIPAL
        principal = arn if arn else (invoked_by if invoked_by else fallback)
        name = user_name or principal.rsplit("/", 1)[-1]
    return (
        itype,
        principal[:MAX_FIELD_CHARS],
        arn,
        name[:MAX_FIELD_CHARS] if name else name,
        (actor or principal)[:MAX_FIELD_CHARS],
        session,
        access_key,
        _mfa(ui, record),
        invoked_by,
    )


def _read_only(value: object) -> bool | None:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return None


def _encode(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise _Reject(f"record cannot be encoded as JSON: {exc}") from None


Row = tuple[Any, ...]


def normalise_row(
    record: object,
    source_file: str | None = None,
    source_offset: int | None = None,
    default_account: str | None = None,
) -> Row | Rejection:
    """Normalise one record into a row (values in :data:`ROW_COLUMNS` order), or reject it.

    ``event_time`` is returned as microseconds since the epoch (UTC) and
    ``event_date`` as days since the epoch, ready for Arrow. Never raises.
    """
    try:
        if not isinstance(record, dict):
            return Rejection(f"record is {_kind(record)}, expected an object")
        get = record.get
        raw = _encode(record)
        if len(raw) > MAX_RECORD_BYTES:
            return Rejection(f"record is {len(raw):,} bytes, over the {MAX_RECORD_BYTES:,}-byte cap")

        when = get("eventTime")
        if when is None:
            when = get("@timestamp")
            micros = _micros(when, "eventTime" if when is None else "@timestamp")
        else:
            micros = _micros(when, "eventTime")

        event_name = get("eventName")
        if event_name.__class__ is not str:
            if event_name is None:
                return Rejection("missing eventName")
            event_name = _text(event_name, "eventName")
        if not event_name:
            return Rejection("eventName is empty")
        event_name = event_name[:MAX_FIELD_CHARS]

        event_id = get("eventID")
        if event_id.__class__ is not str or not event_id:
            if event_id is None or event_id == "":
                event_id = "ts-" + hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
            else:
                event_id = _text(event_id, "eventID")
        elif len(event_id) > MAX_FIELD_CHARS:
            event_id = event_id[:MAX_FIELD_CHARS]

        ui = get("userIdentity")
        account = get("recipientAccountId")
        if account is None:
            account = ui.get("accountId") if isinstance(ui, dict) else None
            if account is None:
                account = default_account or UNKNOWN_ACCOUNT
        if account.__class__ is not str or account not in _valid_accounts:
            account = _text(account, "recipientAccountId")
            if account is None or _ACCOUNT_RE.fullmatch(account) is None:
                return Rejection(f"recipientAccountId {str(account)[:40]!r} is not a valid account id")
            _valid_accounts.add(account)

        # Text fields: the common case (a short string or null) costs one type check.
        region = get("awsRegion")
        if region.__class__ is not str or len(region) > MAX_FIELD_CHARS:
            region = _text(region, "awsRegion")
        event_source = get("eventSource")
        if event_source.__class__ is not str or len(event_source) > MAX_FIELD_CHARS:
            event_source = _text(event_source, "eventSource")
        event_type = get("eventType")
        if event_type.__class__ is not str or len(event_type) > MAX_FIELD_CHARS:
            event_type = _text(event_type, "eventType")
        error_code = get("errorCode")
        if error_code.__class__ is not str or len(error_code) > MAX_FIELD_CHARS:
            error_code = _text(error_code, "errorCode")
        error_message = get("errorMessage")
        if error_message.__class__ is not str or len(error_message) > MAX_FIELD_CHARS:
            error_message = _text(error_message, "errorMessage")
        source_ip = get("sourceIPAddress")
        if source_ip.__class__ is not str or len(source_ip) > MAX_FIELD_CHARS:
            source_ip = _text(source_ip, "sourceIPAddress")
        user_agent = get("userAgent")
        if user_agent.__class__ is not str or len(user_agent) > MAX_FIELD_CHARS:
            user_agent = _text(user_agent, "userAgent")
        vpc_endpoint = get("vpcEndpointId")
        if vpc_endpoint.__class__ is not str or len(vpc_endpoint) > MAX_FIELD_CHARS:
            vpc_endpoint = _text(vpc_endpoint, "vpcEndpointId")

        params = get("requestParameters")
        request_parameters = None if params is None else _encode(params).decode()
        res = get("resources")
        resources = None if res is None else _encode(res).decode()

        (itype, principal, principal_arn, principal_name, actor, session, access_key, mfa, invoked_by) = _identity(
            ui, record, account
        )
        return (
            event_id,
            micros,
            micros // _DAY_US,
            account,
            region,
            event_source,
            _service(event_source),
            event_name,
            _read_only(get("readOnly")),
            event_type,
            error_code,
            error_message,
            source_ip,
            user_agent,
            None,  # ua_family: filled by enrichment
            itype,
            principal,
            principal_arn,
            principal_name,
            actor,
            session,
            access_key,
            mfa,
            invoked_by,
            vpc_endpoint,
            request_parameters,
            resources,
            source_file,
            source_offset,
            raw.decode(),
        )
    except _Reject as exc:
        return Rejection(str(exc))
    except Exception as exc:  # never raise on input, whatever it holds
        return Rejection(f"cannot normalise record: {type(exc).__name__}: {exc}"[:500])


def normalise_record(
    record: object,
    *,
    source_file: str | None = None,
    source_offset: int | None = None,
    default_account: str | None = None,
) -> dict[str, Any] | Rejection:
    """Normalise one record into a dict of record columns (``event_time`` an aware datetime).

    Returns a :class:`Rejection` with the reason instead when the record cannot be
    normalised. Never raises.
    """
    row = normalise_row(record, source_file, source_offset, default_account)
    if isinstance(row, Rejection):
        return row
    out = dict(zip(ROW_COLUMNS, row, strict=True))
    out["event_time"] = _EPOCH + timedelta(microseconds=row[1])
    out["event_date"] = (_EPOCH + timedelta(days=row[2])).date()
    return out


_RECORD_TYPES: Final = [f.type for f in RECORD_FIELDS]
_INT_TIME: Final = pa.int64()
_INT_DATE: Final = pa.int32()


def rows_to_table(rows: list[Row]) -> pa.Table:
    """Build an :data:`~trailsight.schema.EVENT_SCHEMA` table from rows (enrichment columns null)."""
    _trim_caches()
    n = len(rows)
    arrays: list[pa.Array] = []
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in ROW_COLUMNS]
    for i, (values, typ) in enumerate(zip(columns, _RECORD_TYPES, strict=True)):
        if i == 1:
            arrays.append(pa.array(values, _INT_TIME).cast(typ))
        elif i == 2:
            arrays.append(pa.array(values, _INT_DATE).cast(typ))
        else:
            arrays.append(pa.array(values, typ))
    arrays.extend(pa.nulls(n, f.type) for f in ENRICHMENT_FIELDS)
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
