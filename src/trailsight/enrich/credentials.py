"""The credential type of a call: which kind of credential signed it.

From the normalised columns alone (no record parsing at ingest), in this order:

* ``root`` — the root user (``userIdentity.type`` Root), whatever its key;
* ``aws-service`` — an AWS service acting for the account;
* an IAM user: ``long-term-key`` (an ``AKIA…`` access key), ``console-session`` (an ``ASIA…`` key
  from the console), ``session-token`` (an ``ASIA…`` key elsewhere: ``GetSessionToken``), or
  ``none`` (no key: a sign-in event, for instance);
* an assumed role: ``sso-session`` (an IAM Identity Center permission set, ``AWSReservedSSO_…``),
  ``instance-role`` (session named after an EC2 instance, ``i-…``), ``lambda-role`` (the SDK says
  it runs in Lambda, ``exec-env/AWS_Lambda_…``), ``container-role`` (ECS, ``exec-env/AWS_ECS_…``),
  else ``assumed-role``;
* ``federation-token`` (``GetFederationToken``), ``federated`` (web identity or SAML without a
  role session), ``sso-session`` for Identity Center users; ``unknown`` for anything else.

:func:`credential_type` is the rule for one event; :func:`credential_types` applies it to a
batch (each distinct combination of inputs is classified once).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Values of the ``credential_type`` column.
CREDENTIAL_TYPES = (
    "root",
    "aws-service",
    "long-term-key",
    "console-session",
    "session-token",
    "none",
    "sso-session",
    "instance-role",
    "lambda-role",
    "container-role",
    "assumed-role",
    "federation-token",
    "federated",
    "unknown",
)

_INSTANCE_SESSION = re.compile(r"^i-[0-9a-f]{8,17}$")


def credential_type(
    identity_type: str | None,
    access_key_id: str | None,
    principal: str | None,
    session_name: str | None,
    user_agent: str | None,
    ua_family: str | None,
) -> str:
    """The credential type of one event (see the module docstring)."""
    kind = identity_type or ""
    key = access_key_id or ""
    if kind == "Root":
        return "root"
    if kind == "AWSService":
        return "aws-service"
    if kind == "IAMUser":
        if key.startswith("AKIA"):
            return "long-term-key"
        if key.startswith("ASIA"):
            return "console-session" if ua_family == "console" else "session-token"
        return "none"
    if kind == "AssumedRole":
        agent = user_agent or ""
        if "AWSReservedSSO_" in (principal or ""):
            return "sso-session"
        if _INSTANCE_SESSION.match(session_name or ""):
            return "instance-role"
        if "exec-env/AWS_Lambda" in agent:
            return "lambda-role"
        if "exec-env/AWS_ECS" in agent:
            return "container-role"
        return "assumed-role"
    if kind == "FederatedUser":
        return "federation-token"
    if kind in ("WebIdentityUser", "SAMLUser"):
        return "federated"
    if kind == "IdentityCenterUser":
        return "sso-session"
    return "unknown"


_INPUTS = ("identity_type", "access_key_id", "principal", "session_name", "user_agent", "ua_family")


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _derived(column: pa.Array, derive: Any) -> tuple[list[str], np.ndarray]:
    """``derive`` of each distinct value of ``column`` (computed on the dictionary), and per row its code."""
    encoded = pc.fill_null(column, "").dictionary_encode()
    values = [derive(v) for v in encoded.dictionary.to_pylist()]
    # Distinct values may derive the same part: recode so equal parts share a code.
    parts = sorted(set(values))
    code = {v: i for i, v in enumerate(parts)}
    remap = np.array([code[v] for v in values] or [0], dtype=np.int64)
    return parts, remap[np.asarray(encoded.indices, dtype=np.int64)]


def _lambda_or_ecs(agent: str) -> str:
    if "exec-env/AWS_Lambda" in agent:
        return "exec-env/AWS_Lambda"
    return "exec-env/AWS_ECS" if "exec-env/AWS_ECS" in agent else ""


def credential_types(table: pa.Table, ua_family: pa.Array | None = None) -> pa.Array:
    """``credential_type`` of every row of a normalised-events table.

    ``ua_family`` gives the user-agent family when the table does not hold it yet. Only what the
    rule reads is derived per distinct value (a key's prefix, whether the principal is an SSO
    role, the agent's execution environment), so a batch has a handful of combinations to classify.
    """
    if table.num_rows == 0:
        return pa.array([], pa.string())
    derived = [
        _derived(_column(table, "identity_type"), str),
        _derived(_column(table, "access_key_id"), lambda v: str(v)[:4]),
        _derived(_column(table, "principal"), lambda v: "AWSReservedSSO_" if "AWSReservedSSO_" in v else ""),
        _derived(_column(table, "session_name"), lambda v: "i-00000000" if _INSTANCE_SESSION.match(v) else ""),
        _derived(_column(table, "user_agent"), _lambda_or_ecs),
        _derived(ua_family if ua_family is not None else _column(table, "ua_family"), str),
    ]
    # One integer per row from the parts' codes (mixed radix); the parts are few, so it fits.
    combined = np.zeros(table.num_rows, dtype=np.int64)
    for parts, codes in derived:
        combined = combined * len(parts) + codes
    combos, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    values = [credential_type(*(parts[int(codes[i])] for parts, codes in derived)) for i in first.tolist()]
    del combos
    return pa.array(values, pa.string()).take(pa.array(np.asarray(inverse).reshape(-1), pa.int64()))


__all__ = ["CREDENTIAL_TYPES", "credential_type", "credential_types"]
