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
* **Sizes:** a record whose JSON text is over ``max_record_bytes`` (default 1 MiB) or that nests
  deeper than ``max_depth`` (default 64 levels) is rejected (:class:`~trailsight.ingest.parse.Limits`);
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Final

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from trailsight.ingest.parse import DEFAULT_LIMITS, Limits, depth_over, depth_reason
from trailsight.schema import ENRICHMENT_FIELDS, EVENT_SCHEMA, RECORD_FIELDS

MAX_RECORD_BYTES: Final = DEFAULT_LIMITS.max_record_bytes
_ENCODE_DEPTH: Final = 255  # orjson encodes no deeper
"""A record whose JSON text is longer than this is quarantined."""

MAX_FIELD_CHARS: Final = 8192
"""Text fields longer than this are cut to this many characters."""

UNKNOWN_ACCOUNT: Final = "unknown"
UNKNOWN_PRINCIPAL: Final = "unknown"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_DAY_US: Final = 86_400_000_000
_MIN_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TIME: Final = datetime(2100, 1, 1, tzinfo=UTC)
_MIN_US: Final = (_MIN_TIME - _EPOCH) // _ONE_US
_MAX_US: Final = (_MAX_TIME - _EPOCH) // _ONE_US
# Seconds with more than six decimals: rounded to the microsecond on the 7th, as msgspec does.
_LONG_FRACTION: Final = re.compile(r"\.(\d{6})(\d+)")

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
    """Microseconds since the epoch (UTC) of a CloudTrail time string.

    A time without an offset is UTC; more than six decimals of a second are rounded on the
    seventh, as the columnar path's decoder (msgspec) rounds them.
    """
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
    up = False
    if (long := _LONG_FRACTION.search(text)) is not None:
        up = long.group(2)[0] >= "5"
        text = text[: long.end(1)] + text[long.end(2) :]
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise _Reject(f"{name} is not an ISO 8601 time: {value[:40]!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    try:
        micros = (stamp - _EPOCH) // _ONE_US + up
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


_STR_OR_NONE: Final = frozenset({str, type(None)})


def _texts(values: tuple[object, ...], names: tuple[str, ...]) -> tuple[Any, ...]:
    """Slow path when a text field holds something else: coerce scalars, reject containers."""
    return tuple(_text(v, n) for v, n in zip(values, names, strict=True))


_IDENTITY_KEYS: Final = ("type", "arn", "accountId", "userName", "accessKeyId", "invokedBy", "principalId")
_IDENTITY_NAMES: Final = tuple(f"userIdentity.{n}" for n in _IDENTITY_KEYS)
_RECORD_NAMES: Final = (
    "eventName",
    "eventID",
    "recipientAccountId",
    "awsRegion",
    "eventSource",
    "eventType",
    "errorCode",
    "errorMessage",
    "sourceIPAddress",
    "userAgent",
    "vpcEndpointId",
)

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

_NO_IDENTITY: Final[_Identity] = (None, UNKNOWN_PRINCIPAL, None, None, UNKNOWN_PRINCIPAL, None, None, None, None)

# assumed-role ARN -> (session name, role ARN derived from it, role name, whether the ARN names
# its account); sessions repeat a lot. An ARN without an account takes the caller's, so that part
# is not cached (the answer must not depend on which record came first).
_assumed_cache: dict[str, tuple[str, str, str, bool] | None] = {}


def _parse_assumed(arn: str, account: str) -> tuple[str, str, str] | None:
    hit = _assumed_cache.get(arn, False)
    if hit is False:
        match = _ASSUMED_ROLE_RE.fullmatch(arn)
        hit = (
            None
            if match is None
            else (match[4], f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}", match[3], bool(match[2]))
        )
        if len(_assumed_cache) > 200_000:
            _assumed_cache.clear()
        _assumed_cache[arn] = hit
    if hit is None:
        return None
    session, role, name, has_account = hit  # type: ignore[misc]
    if not has_account:
        role = role.replace(":iam:::role/", f":iam::{account}:role/", 1)
    return session, role, name


def _identity(ui: object, record: dict[str, Any], account_id: str) -> _Identity:
    if ui is None:
        return _NO_IDENTITY
    if ui.__class__ is not dict:
        raise _Reject(f"userIdentity is {_kind(ui)}, expected an object")
    get = ui.get
    fields = tuple(map(get, _IDENTITY_KEYS))
    if not _STR_OR_NONE.issuperset(map(type, fields)):
        fields = _texts(fields, _IDENTITY_NAMES)
    itype, arn, ui_account, user_name, access_key, invoked_by, principal_id = fields
    ui_account = ui_account or account_id
    session: str | None = None
    name: str | None = None
    actor: str | None = None

    mfa: bool | None = None
    ctx = get("sessionContext")
    if ctx.__class__ is dict:
        attrs = ctx.get("attributes")
        if attrs.__class__ is dict:
            flag = attrs.get("mfaAuthenticated")
            if flag is not None:
                mfa = flag == "true" or flag is True or (flag.__class__ is str and flag.lower() == "true")
    else:
        ctx = None
    if mfa is None:
        extra = record.get("additionalEventData")
        if extra.__class__ is dict:
            used = extra.get("MFAUsed")
            if used.__class__ is str:
                mfa = used.lower() == "yes"

    if itype == "AssumedRole":
        role_arn: str | None = None
        issuer = ctx.get("sessionIssuer") if ctx is not None else None
        if issuer.__class__ is dict:
            role_arn = issuer.get("arn")
            name = issuer.get("userName")
            if role_arn.__class__ is not str or name.__class__ is not str:
                role_arn = _text(role_arn, "sessionIssuer.arn")
                name = _text(name, "sessionIssuer.userName")
        parsed = _parse_assumed(arn, ui_account) if arn else None
        if parsed is not None:
            session = parsed[0]
            if not role_arn:
                role_arn, name = parsed[1], parsed[2]
        if not session and principal_id and ":" in principal_id:
            session = principal_id.split(":", 1)[1]
        principal = role_arn or arn or f"assumed-role:{principal_id or UNKNOWN_PRINCIPAL}"
        if not name:
            name = principal.rsplit("/", 1)[-1]
        if session:
            if name.startswith("AWSReservedSSO_"):
                actor = f"{principal}/{session}"
                name = session
            elif is_stable_session_name(session):
                actor = f"{principal}/{session}"
    elif itype == "IAMUser":
        if arn:
            principal = arn
        elif user_name:
            principal = f"arn:aws:iam::{ui_account}:user/{user_name}"
        else:
            principal = f"iam-user:{principal_id or UNKNOWN_PRINCIPAL}"
        name = user_name or principal.rsplit("/", 1)[-1]
    elif itype == "AWSService":
        source_ip = record.get("sourceIPAddress")
        if invoked_by:
            principal = invoked_by
        elif source_ip.__class__ is str and source_ip.endswith(".amazonaws.com"):
            principal = source_ip
        else:
            principal = "aws-service"
        name = principal
    elif itype == "Root":
        partition = arn.split(":", 2)[1] if arn and arn.startswith("arn:") and arn.count(":") >= 2 else "aws"
        principal = f"arn:{partition}:iam::{ui_account}:root"
        name = "root"
    elif itype == "FederatedUser":
        principal = arn or f"federated-user:{principal_id or UNKNOWN_PRINCIPAL}"
        name = principal.rsplit("/", 1)[-1]
        session = name
    elif itype == "AWSAccount":
        principal = arn or f"aws-account:{ui_account}"
        name = ui_account
    elif itype in ("WebIdentityUser", "SAMLUser"):
        provider = _text(get("identityProvider"), "userIdentity.identityProvider")
        who = user_name or principal_id or UNKNOWN_PRINCIPAL
        principal = arn or f"{'web-identity' if itype == 'WebIdentityUser' else 'saml'}:{provider or ''}:{who}"
        name = user_name or who
    elif itype == "IdentityCenterUser":
        behalf = get("onBehalfOf")
        behalf = behalf if behalf.__class__ is dict else None
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
    return (itype, principal, arn, name, actor or principal, session, access_key, mfa, invoked_by)


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


Row = tuple[Any, ...]


def normalise_row(
    record: object,
    source_file: str | None = None,
    source_offset: int | None = None,
    default_account: str | None = None,
    text: bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Row | Rejection:
    """Normalise one record into a row (values in :data:`ROW_COLUMNS` order), or reject it.

    ``event_time`` is returned as microseconds since the epoch (UTC), ``event_date`` as days
    since the epoch, and the JSON text columns (``request_parameters``, ``resources``, ``raw``)
    as UTF-8 bytes, ready for Arrow. ``text`` is the record's own JSON text when the parser has
    it (it becomes ``raw`` as is); otherwise ``raw`` is the record re-encoded. Text longer than
    :data:`MAX_FIELD_CHARS` is cut when the rows become a table (:func:`rows_to_table`).
    Never raises.
    """
    try:
        if record.__class__ is not dict:
            return Rejection(f"record is {_kind(record)}, expected an object")
        get = record.get
        if text is not None:
            raw = text
        else:
            try:
                raw = orjson.dumps(record)
            except (TypeError, orjson.JSONEncodeError) as exc:
                if "ecursion" in str(exc):  # orjson writes at most 255 levels
                    return Rejection(
                        f"record nested more than {_ENCODE_DEPTH} levels deep, over the {limits.max_depth:,}-level cap "
                        "([ingest] max_depth)"
                    )
                return Rejection(f"record cannot be encoded as JSON: {exc}")
        if len(raw) > limits.max_record_bytes:
            cap = limits.max_record_bytes
            return Rejection(f"record is {len(raw):,} bytes, over the {cap:,}-byte cap ([ingest] max_record_bytes)")
        if deep := depth_over(raw, limits.max_depth):
            return Rejection(depth_reason(deep, limits.max_depth))

        when = get("eventTime")
        if when is None:
            when = get("@timestamp")
            micros = _micros(when, "eventTime" if when is None else "@timestamp")
        else:
            micros = _micros(when, "eventTime")

        texts = tuple(map(get, _RECORD_NAMES))
        if not _STR_OR_NONE.issuperset(map(type, texts)):
            texts = _texts(texts, _RECORD_NAMES)
        (
            event_name,
            event_id,
            account,
            region,
            event_source,
            event_type,
            error_code,
            error_message,
            source_ip,
            user_agent,
            vpc_endpoint,
        ) = texts
        if not event_name:
            return Rejection("missing eventName" if event_name is None else "eventName is empty")
        if not event_id:
            event_id = "ts-" + hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]

        ui = get("userIdentity")
        if account is None:
            account = ui.get("accountId") if ui.__class__ is dict else None
            if account is None:
                account = default_account or UNKNOWN_ACCOUNT
            elif account.__class__ is not str:
                account = _text(account, "userIdentity.accountId")
        if account not in _valid_accounts:
            if not isinstance(account, str) or _ACCOUNT_RE.fullmatch(account) is None:
                return Rejection(f"recipientAccountId {str(account)[:40]!r} is not a valid account id")
            _valid_accounts.add(account)

        params = get("requestParameters")
        res = get("resources")
        ident = _identity(ui, record, account)
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
            *ident,
            vpc_endpoint,
            None if params is None else orjson.dumps(params),
            None if res is None else orjson.dumps(res),
            source_file,
            source_offset,
            raw,
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
    for name, value in out.items():
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            out[name] = value[:MAX_FIELD_CHARS]
    for name in _JSON_COLUMNS:
        if out[name] is not None:
            out[name] = out[name].decode()
    out["event_time"] = _EPOCH + timedelta(microseconds=row[1])
    out["event_date"] = (_EPOCH + timedelta(days=row[2])).date()
    return out


_RECORD_TYPES: Final = [f.type for f in RECORD_FIELDS]
_JSON_COLUMNS: Final = ("request_parameters", "resources", "raw")
_JSON_INDEXES: Final = frozenset(ROW_COLUMNS.index(c) for c in _JSON_COLUMNS)
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
        elif i in _JSON_INDEXES:
            arrays.append(_json_column(values))
        elif typ == pa.string():
            arrays.append(text_array(values))
        else:
            arrays.append(pa.array(values, typ))
    arrays.extend(pa.nulls(n, f.type) for f in ENRICHMENT_FIELDS)
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


# ---------------------------------------------------------------- columnar fast path
#
# A compact CloudTrail delivery file (the shape AWS writes) is normalised column by column:
# msgspec decodes each record's text into a typed struct holding only the fields read here
# (nested objects stay as their JSON text), the identity columns are derived once per distinct
# ``userIdentity`` and taken for every record that shares it, and the columns go to Arrow in
# one step. A record the struct cannot hold exactly (a number where text is expected, a missing
# time, event id or account, anything unusual) is handed back and takes the row path above, so
# both paths give the same rows.


class _Fields(msgspec.Struct):
    """The fields of a record the fast path reads (CloudTrail's names); the rest is skipped."""

    eventTime: datetime | None = None  # RFC 3339, parsed in C; other forms take the row path
    eventName: str | None = None
    eventID: str | None = None
    recipientAccountId: str | None = None
    awsRegion: str | None = None
    eventSource: str | None = None
    eventType: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    vpcEndpointId: str | None = None
    readOnly: bool | str | None = None
    userIdentity: msgspec.Raw = msgspec.Raw(b"null")
    additionalEventData: msgspec.Raw = msgspec.Raw(b"null")
    requestParameters: msgspec.Raw = msgspec.Raw(b"null")
    resources: msgspec.Raw = msgspec.Raw(b"null")


_decode_fields: Final = msgspec.json.Decoder(_Fields).decode
_NULL: Final = b"null"
_MFA_KEY: Final = b'"MFAUsed"'
_SERVICE_SUFFIX: Final = ".amazonaws.com"
_IDENTITY_TYPES: Final = (*[pa.string()] * 7, pa.bool_(), pa.string())  # the _Identity fields
# (userIdentity text, account, MFAUsed, service host in sourceIPAddress) -> identity, or None
# when the identity cannot be derived here (the record then takes the row path).
Buffer = bytes | msgspec.Raw
"""A record's JSON text: bytes, or a :class:`msgspec.Raw` view of a file's text."""
Bounds = tuple[int | None, int | None, frozenset[str], frozenset[str]]
"""Record filters: since and until (microseconds), accounts, regions (empty: any)."""


def outside(bounds: Bounds, at: int, account: str, region: str | None) -> bool:
    """Whether a record at ``at`` (microseconds) in ``account`` / ``region`` falls outside ``bounds``."""
    since_us, until_us, accounts, regions = bounds
    return (
        (since_us is not None and at < since_us)
        or (until_us is not None and at >= until_us)
        or bool(accounts and account not in accounts)
        or bool(regions and region not in regions)
    )


_identity_cache: dict[tuple[bytes, str, str | None, str | None], _Identity | None] = {}


def _cached_identity(
    ui_text: msgspec.Raw, account: str, extra_text: msgspec.Raw, source_ip: str | None
) -> _Identity | None:
    mfa_used: str | None = None
    if len(extra_text) > 4 and _MFA_KEY in (extra := bytes(extra_text)):
        value = orjson.loads(extra)
        used = value.get("MFAUsed") if value.__class__ is dict else None
        mfa_used = used if used.__class__ is str else None
    service_ip = source_ip if source_ip is not None and source_ip.endswith(_SERVICE_SUFFIX) else None
    ui = bytes(ui_text)
    key = (ui, account, mfa_used, service_ip)
    hit = _identity_cache.get(key, False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    record: dict[str, Any] = {"sourceIPAddress": service_ip}
    if mfa_used is not None:
        record["additionalEventData"] = {"MFAUsed": mfa_used}
    try:
        ident: _Identity | None = _identity(None if ui == _NULL else orjson.loads(ui), record, account)
    except Exception:  # _Reject, or anything odd: the row path reports it
        ident = None
    if len(_identity_cache) > 100_000:
        _identity_cache.clear()
    _identity_cache[key] = ident
    return ident


def _json_column(values: Sequence[bytes | None]) -> pa.Array:
    """A string column of JSON texts (valid UTF-8 already: viewed as text without re-validating)."""
    return pa.array(values, pa.binary()).view(pa.string())


def text_array(values: list[Any] | tuple[Any, ...]) -> pa.Array:
    """A string column of ``values``, each cut to :data:`MAX_FIELD_CHARS` characters."""
    return _cut(pa.array(values, pa.string()))


def _cut(arr: pa.Array) -> pa.Array:
    """``arr`` (strings) with each value cut to :data:`MAX_FIELD_CHARS` characters."""
    n = len(arr)
    # A string of at most MAX_FIELD_CHARS bytes has at most that many characters: look at bytes first.
    if (
        n
        and int(np.diff(np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4)).max()) > MAX_FIELD_CHARS
        and (pc.max(pc.utf8_length(arr)).as_py() or 0) > MAX_FIELD_CHARS
    ):
        arr = pc.utf8_slice_codeunits(arr, 0, MAX_FIELD_CHARS)
    return arr


_get_eventID, _get_awsRegion, _get_eventName, _get_eventType, _get_errorCode = map(
    attrgetter, ("eventID", "awsRegion", "eventName", "eventType", "errorCode")
)
_get_errorMessage, _get_sourceIPAddress, _get_userAgent, _get_vpcEndpointId, _get_eventSource = map(
    attrgetter, ("errorMessage", "sourceIPAddress", "userAgent", "vpcEndpointId", "eventSource")
)


class FastRows:
    """Records of compact delivery files, normalised column by column and collected until :meth:`table`.

    :meth:`add` takes the JSON texts of one file's records, keeps those it can normalise here
    (their columns wait in lists, so that the Arrow step runs once for many small files) and
    returns the indexes of the others, which the caller puts through :func:`normalise_row`:
    together they give exactly the rows :func:`normalise_row` gives for every record. Records
    outside the time / account / region bounds are dropped and counted as ``filtered``.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._fields: list[_Fields] = []
        self._times: list[datetime] = []
        self._accounts: list[str] = []
        self._ident_ids: list[int] = []
        self._idents: dict[_Identity, int] = {}
        # (userIdentity text, account, additionalEventData text when it names MFAUsed, service host
        # in sourceIPAddress) -> index in _idents: what _cached_identity derives, looked up cheaply.
        self._ident_keys: dict[tuple[bytes, str, bytes | None, str | None], int] = {}
        self._offsets: list[int] = []
        self._file_ids: list[int] = []
        self._files: list[str | None] = []
        self._tags: list[int] = []
        self._texts: list[Buffer] = []

    def __len__(self) -> int:
        return len(self._times)

    def add(
        self,
        texts: Sequence[Buffer],
        source_file: str | None,
        default_account: str | None,
        bounds: Bounds,
        tag: int = 0,
    ) -> tuple[list[int], int]:
        """Take one file's record texts (buffers of valid UTF-8); return (indexes for the row path,
        records filtered out)."""
        slow: list[int] = []
        filtered = 0
        file_id = len(self._files)
        self._files.append(source_file)
        self._tags.append(tag)
        check = bounds[0] is not None or bounds[1] is not None or bool(bounds[2] or bounds[3])
        fields, times, accounts, ident_ids = self._fields, self._times, self._accounts, self._ident_ids
        idents, ident_keys = self._idents, self._ident_keys
        valid_accounts = _valid_accounts
        decode = _decode_fields
        kept: list[int] = []
        for i, text in enumerate(texts):
            try:
                rec = decode(text)
                account = rec.recipientAccountId
                if (
                    not rec.eventName
                    or not rec.eventID
                    or not account
                    or rec.eventTime is None
                    or len(text) > MAX_RECORD_BYTES
                ):
                    slow.append(i)
                    continue
                if account not in valid_accounts:
                    if _ACCOUNT_RE.fullmatch(account) is None:
                        slow.append(i)
                        continue
                    valid_accounts.add(account)
                stamp = rec.eventTime
                if stamp.tzinfo is not UTC or not _MIN_TIME <= stamp < _MAX_TIME:
                    slow.append(i)  # an offset other than UTC, a naive time or one out of range
                    continue
                extra = rec.additionalEventData
                extra_key = None
                if len(extra) > 4 and _MFA_KEY in (extra_bytes := bytes(extra)):
                    extra_key = extra_bytes
                source_ip = rec.sourceIPAddress
                service_ip = source_ip if source_ip is not None and source_ip.endswith(_SERVICE_SUFFIX) else None
                key = (bytes(rec.userIdentity), account, extra_key, service_ip)
                ident_id = ident_keys.get(key)
                if ident_id is None:
                    ident = _cached_identity(rec.userIdentity, account, extra, source_ip)
                    if ident is None:
                        slow.append(i)
                        continue
                    ident_id = idents.setdefault(ident, len(idents))
                    ident_keys[key] = ident_id
            except Exception:  # a record the struct cannot hold, a bad time: the row path says why
                slow.append(i)
                continue
            if check and outside(bounds, (stamp - _EPOCH) // _ONE_US, account, rec.awsRegion):
                filtered += 1
                continue
            fields.append(rec)
            times.append(stamp)
            accounts.append(account)
            ident_ids.append(ident_id)
            kept.append(i)
        if len(kept) == len(texts):
            self._texts.extend(texts)
        else:
            self._texts.extend([texts[i] for i in kept])
        self._offsets.extend(kept)
        self._file_ids.extend([file_id] * len(kept))
        return slow, filtered

    def table(self) -> tuple[pa.Table, np.ndarray]:
        """The :data:`~trailsight.schema.EVENT_SCHEMA` table of the records added since the last call
        (enrichment columns null), and each row's file ``tag``; then start afresh."""
        _trim_caches()
        fields = self._fields
        n = len(fields)
        event_time = pa.array(self._times, RECORD_FIELDS[1].type)
        sources = pa.array(list(map(_get_eventSource, fields)), pa.string())
        take = pa.array(self._ident_ids, pa.int32())
        distinct = list(self._idents)
        ident_columns = [
            (text_array(values) if typ == pa.string() else pa.array(values, typ)).take(take)
            for values, typ in zip(
                zip(*distinct, strict=True) if distinct else [()] * len(_IDENTITY_TYPES), _IDENTITY_TYPES, strict=True
            )
        ]
        file_ids = np.array(self._file_ids, np.int32)
        files = text_array(self._files).take(pa.array(file_ids))
        arrays: list[pa.Array] = [
            text_array(list(map(_get_eventID, fields))),
            event_time,
            pa.array(event_time.cast(pa.int64()).to_numpy() // _DAY_US, pa.int32()).cast(RECORD_FIELDS[2].type),
            pa.array(self._accounts, pa.string()),
            text_array(list(map(_get_awsRegion, fields))),
            _cut(sources),
            _services(sources),
            text_array(list(map(_get_eventName, fields))),
            _read_only_column(list(map(_get_readOnly, fields))),
            text_array(list(map(_get_eventType, fields))),
            text_array(list(map(_get_errorCode, fields))),
            text_array(list(map(_get_errorMessage, fields))),
            text_array(list(map(_get_sourceIPAddress, fields))),
            text_array(list(map(_get_userAgent, fields))),
            pa.nulls(n, pa.string()),  # ua_family: filled by enrichment
            *ident_columns,
            text_array(list(map(_get_vpcEndpointId, fields))),
            _json_texts(list(map(_get_requestParameters, fields)), nulls=True),
            _json_texts(list(map(_get_resources, fields)), nulls=True),
            files,
            pa.array(self._offsets, pa.int64()),
            _json_texts(self._texts),
        ]
        arrays.extend(pa.nulls(n, f.type) for f in ENRICHMENT_FIELDS)
        tags = np.array(self._tags, np.int64)[file_ids]
        self._reset()
        return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA), tags


_get_readOnly, _get_requestParameters, _get_resources = map(attrgetter, ("readOnly", "requestParameters", "resources"))
_NULL_TEXT: Final = pa.scalar(None, pa.string())
_MAX_OFFSET: Final = (1 << 31) - 1


def _json_texts(values: list[Buffer], *, nulls: bool = False) -> pa.Array:
    """A string column of JSON texts given as buffers of valid UTF-8 (with ``nulls``, ``null`` becomes null)."""
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _MAX_OFFSET:  # more than 2 GiB of text: let Arrow cut it into chunks
        arr = _json_column([None if nulls and bytes(v) == _NULL else bytes(v) for v in values])
        return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(values))]
    )
    if nulls and len(values) and bool((lengths == len(_NULL)).any()):
        arr = pc.if_else(pc.equal(arr, "null"), _NULL_TEXT, arr)
    return arr


def _services(sources: pa.Array) -> pa.Array:
    """The ``service`` column: each event source less ``.amazonaws.com`` (worked out once per distinct source)."""
    encoded = sources.dictionary_encode()
    return text_array([_service(s) for s in encoded.dictionary.to_pylist()]).take(encoded.indices)


def _read_only_column(values: list[object]) -> pa.Array:
    """The ``read_only`` column (booleans as they are; the texts ``true`` / ``false`` in any case)."""
    try:
        return pa.array(values, pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_read_only(v) for v in values], pa.bool_())
