"""Pivots for an investigation: an IP address, an access key, a principal and its role chains.

Each function takes a DuckDB connection where ``events`` is the lake (see
:func:`trailsight.investigate.lake.open_lake`) and returns plain JSON-ready data
(dicts, lists, ISO 8601 UTC times), so the CLI and the web UI show the same thing.
Every value from CloudTrail goes in as a query parameter, never into the SQL text.

Role chains: a principal's ``AssumeRole`` calls name the role (``requestParameters.roleArn``,
or the ARN in the error message when the call was refused) and, when it succeeded, the
temporary access key handed back (``responseElements.credentials.accessKeyId`` in the raw
record). What the session then did is found by that access key, or else by the role and
session name (``sessionContext``); sessions that assumed further roles are followed too.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from trailsight.investigate.lake import fetch_rows, iso, iso_fields
from trailsight.investigate.networks import usual_networks
from trailsight.investigate.signin import signin_habit

__all__ = [
    "api_summary",
    "ip_pivot",
    "key_pivot",
    "principal_pivot",
    "principal_summary",
    "resolve_identity",
    "resolve_principal",
    "role_assumers",
    "role_chains",
    "roles_assumed",
]

_MAX_ROWS = 200
_MAX_CHAIN_DEPTH = 3

_ROLE_ARN = (
    "coalesce(json_extract_string(request_parameters, '$.roleArn'), "
    "regexp_extract(error_message, 'on resource: (arn:[^ ]+)', 1))"
)
_RETURNED_KEY = "json_extract_string(raw, '$.responseElements.credentials.accessKeyId')"


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> dict[str, Any]:
    rows = fetch_rows(con, sql, params)
    return rows[0] if rows else {}


def resolve_principal(con: duckdb.DuckDBPyConnection, text: str) -> list[str]:
    """Principal ARNs matching ``text``: the principal or actor ARN itself, or its last name (``alice``)."""
    rows = con.execute(
        "SELECT principal, count(*) AS n FROM events WHERE principal = ? OR actor = ? "
        "OR ends_with(principal, ?) OR ends_with(actor, ?) OR principal_name = ? GROUP BY 1 ORDER BY n DESC, 1",
        [text, text, "/" + text, "/" + text, text],
    ).fetchall()
    return [str(r[0]) for r in rows]


def resolve_identity(con: duckdb.DuckDBPyConnection, text: str) -> tuple[str, str, list[str]] | None:
    """Which column and value ``text`` names: ``("actor", <actor ARN>, matches)`` for a person behind
    an SSO role (``ines.lee@example.com`` or the full actor ARN), else ``("principal", <ARN>, matches)``;
    None when nothing matches.
    """
    actors = con.execute(
        "SELECT actor, count(*) AS n FROM events WHERE actor <> principal AND (actor = ? OR ends_with(actor, ?)) "
        "GROUP BY 1 ORDER BY n DESC, 1",
        [text, "/" + text],
    ).fetchall()
    if actors:
        return "actor", str(actors[0][0]), [str(a[0]) for a in actors]
    principals = resolve_principal(con, text)
    if principals:
        return "principal", principals[0], principals
    return None


def api_summary(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """APIs called by the events matching ``where`` (SQL with ``?`` parameters): successes, failures, errors."""
    rows = con.execute(
        "SELECT coalesce(service, ''), event_name, error_code, count(*), epoch_us(min(event_time)), "
        f"epoch_us(max(event_time)) FROM events WHERE {where} GROUP BY ALL",
        params,
    ).fetchall()
    apis: dict[tuple[str, str], dict[str, Any]] = {}
    for service, name, error, n, first, last in rows:
        entry = apis.setdefault(
            (service, name),
            {
                "service": service,
                "event_name": name,
                "success": 0,
                "failure": 0,
                "error_codes": {},
                "first_seen": first,
                "last_seen": last,
            },
        )
        if error is None:
            entry["success"] += int(n)
        else:
            entry["failure"] += int(n)
            entry["error_codes"][str(error)] = int(n)
        entry["first_seen"] = min(entry["first_seen"], first)
        entry["last_seen"] = max(entry["last_seen"], last)
    out = sorted(apis.values(), key=lambda a: (-(a["success"] + a["failure"]), a["service"], a["event_name"]))
    return [iso_fields(a, "first_seen", "last_seen") for a in out[:_MAX_ROWS]]


def _totals(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> dict[str, Any]:
    row = _one(
        con,
        "SELECT count(*) AS events, count(*) FILTER (WHERE error_code IS NOT NULL) AS failures, "
        "epoch_us(min(event_time)) AS first_seen, epoch_us(max(event_time)) AS last_seen, "
        f"count(DISTINCT event_name) AS apis FROM events WHERE {where}",
        params,
    )
    return iso_fields(row, "first_seen", "last_seen")


def _sources(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    rows = fetch_rows(
        con,
        "SELECT source_ip AS ip, any_value(ip_kind) AS ip_kind, any_value(asn) AS asn, any_value(as_org) AS as_org, "
        "any_value(city) AS city, any_value(country) AS country, count(*) AS events, "
        "count(*) FILTER (WHERE error_code IS NOT NULL) AS failures, "
        "epoch_us(min(event_time)) AS first_seen, epoch_us(max(event_time)) AS last_seen "
        f"FROM events WHERE {where} AND source_ip IS NOT NULL GROUP BY source_ip ORDER BY events DESC, ip LIMIT ?",
        [*params, _MAX_ROWS],
    )
    return [iso_fields(r, "first_seen", "last_seen") for r in rows]


def _values(con: duckdb.DuckDBPyConnection, column: str, where: str, params: list[Any]) -> list[dict[str, Any]]:
    rows = fetch_rows(
        con,
        f"SELECT {column} AS value, count(*) AS events, epoch_us(min(event_time)) AS first_seen, "
        f"epoch_us(max(event_time)) AS last_seen FROM events WHERE {where} AND {column} IS NOT NULL "
        "GROUP BY 1 ORDER BY events DESC, 1 LIMIT ?",
        [*params, _MAX_ROWS],
    )
    return [iso_fields(r, "first_seen", "last_seen") for r in rows]


def principal_summary(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Principals of the events matching ``where``: identity type, events, failures, APIs, first and last seen."""
    rows = fetch_rows(
        con,
        "SELECT principal, any_value(identity_type) AS identity_type, count(*) AS events, "
        "count(*) FILTER (WHERE error_code IS NOT NULL) AS failures, count(DISTINCT event_name) AS apis, "
        "epoch_us(min(event_time)) AS first_seen, epoch_us(max(event_time)) AS last_seen "
        f"FROM events WHERE {where} GROUP BY principal ORDER BY events DESC, principal LIMIT ?",
        [*params, _MAX_ROWS],
    )
    return [iso_fields(r, "first_seen", "last_seen") for r in rows]


def ip_pivot(con: duckdb.DuckDBPyConnection, ip: str) -> dict[str, Any]:
    """Who used source IP ``ip``, since when, what they called (successes and failures), with which keys."""
    where, params = "source_ip = ?", [ip]
    totals = _totals(con, where, params)
    network = _one(
        con,
        "SELECT any_value(ip_kind) AS ip_kind, any_value(asn) AS asn, any_value(as_org) AS as_org, "
        "any_value(city) AS city, any_value(country) AS country FROM events WHERE source_ip = ?",
        [ip],
    )
    return {
        "ip": ip,
        **totals,
        "network": network,
        "principals": principal_summary(con, where, params),
        "apis": api_summary(con, where, params),
        "access_keys": _values(con, "access_key_id", where, params),
        "user_agents": _values(con, "user_agent", where, params),
    }


def key_pivot(con: duckdb.DuckDBPyConnection, access_key: str) -> dict[str, Any]:
    """Who used access key ``access_key``, where from, what they called, and how the key was issued."""
    where, params = "access_key_id = ?", [access_key]
    issued = fetch_rows(
        con,
        f"SELECT epoch_us(event_time) AS event_time, principal, event_name, {_ROLE_ARN} AS role_arn, "
        "json_extract_string(request_parameters, '$.roleSessionName') AS session_name, source_ip, event_id "
        f"FROM events WHERE {_RETURNED_KEY} = ? "
        "OR (event_name = 'CreateAccessKey' AND "
        "json_extract_string(raw, '$.responseElements.accessKey.accessKeyId') = ?) ORDER BY event_time",
        [access_key, access_key],
    )
    return {
        "access_key": access_key,
        **_totals(con, where, params),
        "principals": principal_summary(con, where, params),
        "issued_by": [iso_fields(r, "event_time") for r in issued],
        "source_ips": _sources(con, where, params),
        "apis": api_summary(con, where, params),
        "user_agents": _values(con, "user_agent", where, params),
    }


def role_chains(con: duckdb.DuckDBPyConnection, principal: str, depth: int = _MAX_CHAIN_DEPTH) -> list[dict[str, Any]]:
    """The roles ``principal`` assumed and what each session did (followed ``depth`` levels down)."""
    return _chains(con, "principal = ?", [principal], depth, set())


def _chains(
    con: duckdb.DuckDBPyConnection, where: str, params: list[Any], depth: int, seen: set[str]
) -> list[dict[str, Any]]:
    assumed = fetch_rows(
        con,
        f"SELECT epoch_us(event_time) AS assumed_at, event_id, {_ROLE_ARN} AS role_arn, "
        "json_extract_string(request_parameters, '$.roleSessionName') AS session_name, "
        f"{_RETURNED_KEY} AS access_key, error_code, source_ip "
        f"FROM events WHERE ({where}) AND event_name IN ('AssumeRole', 'AssumeRoleWithSAML', "
        "'AssumeRoleWithWebIdentity') ORDER BY event_time, event_id LIMIT ?",
        [*params, _MAX_ROWS],
    )
    # Several calls for the same role: one entry per (role, session), keeping every attempt's outcome.
    grouped: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in assumed:
        key = (str(row["role_arn"] or "(unknown role)"), row["access_key"] or row["session_name"])
        entry = grouped.get(key)
        if entry is None:
            entry = {
                "role_arn": row["role_arn"],
                "session_name": row["session_name"],
                "access_keys": [],
                "assumed_at": iso(row["assumed_at"]),
                "attempts": 0,
                "failures": 0,
                "error_codes": defaultdict(int),
                "event_ids": [],
            }
            grouped[key] = entry
        entry["attempts"] += 1
        entry["event_ids"].append(row["event_id"])
        if row["error_code"]:
            entry["failures"] += 1
            entry["error_codes"][str(row["error_code"])] += 1
        if row["access_key"] and row["access_key"] not in entry["access_keys"]:
            entry["access_keys"].append(row["access_key"])
    chains = []
    for entry in grouped.values():
        entry["error_codes"] = dict(entry["error_codes"])
        keys: list[str] = entry["access_keys"]
        clauses, sparams = [], []
        if keys:
            clauses.append("access_key_id IN (SELECT unnest(?::VARCHAR[]))")
            sparams.append(keys)
        elif entry["role_arn"] and entry["session_name"]:
            # No key handed back (or not recorded): fall back on the role and session name.
            clauses.append("(principal = ? AND session_name = ?)")
            sparams += [entry["role_arn"], entry["session_name"]]
        session: dict[str, Any] = {"events": 0}
        if clauses:
            swhere = "(" + " OR ".join(clauses) + ")"
            session = {**_totals(con, swhere, sparams), "apis": api_summary(con, swhere, sparams)}
            session["source_ips"] = _sources(con, swhere, sparams)
            marker = f"{entry['role_arn']}|{entry['session_name']}|{','.join(keys)}"
            if depth > 1 and marker not in seen:
                session["assumed"] = _chains(con, swhere, sparams, depth - 1, seen | {marker})
        entry["session"] = session
        chains.append(entry)
    return chains


_ASSUME_ROLE_EVENTS = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity")
_ROLE_LINK_SQL = (
    "SELECT principal AS source, json_extract_string(request_parameters, '$.roleArn') AS target, "
    "count(*) AS count, epoch_us(min(event_time)) AS first_seen, epoch_us(max(event_time)) AS last_seen, "
    "list(DISTINCT source_ip) AS ips FROM events "
    "WHERE event_name IN (?, ?, ?) AND error_code IS NULL AND {cond} GROUP BY source, target "
    "ORDER BY count DESC, source, target LIMIT 50"
)


def _role_links(con: duckdb.DuckDBPyConnection, cond: str, value: str, depth: int) -> list[dict[str, Any]]:
    rows = fetch_rows(con, _ROLE_LINK_SQL.format(cond=cond), [*_ASSUME_ROLE_EVENTS, value])
    return [
        {
            "source": str(r["source"]),
            "target": str(r["target"]),
            "count": int(r["count"]),
            "first_seen": iso(r["first_seen"]),
            "last_seen": iso(r["last_seen"]),
            "source_ips": sorted(str(i) for i in (r["ips"] or []) if i)[:5],
            "depth": depth,
        }
        for r in rows
        if r["target"]
    ]


def role_assumers(con: duckdb.DuckDBPyConnection, role_arn: str, max_depth: int = 5) -> list[dict[str, Any]]:
    """Who assumed ``role_arn`` (successful AssumeRole calls naming it), walked back up to ``max_depth`` hops.

    One link per (caller, role): ``{source, target, count, first_seen, last_seen, source_ips (up to 5),
    depth}``, depth 1 for the callers that assumed ``role_arn`` itself, 2 for those who assumed theirs ...
    """
    links: list[dict[str, Any]] = []
    frontier, seen = [role_arn], {role_arn}
    for depth in range(1, max_depth + 1):
        callers: list[str] = []
        for arn in frontier:
            for link in _role_links(con, "json_extract_string(request_parameters, '$.roleArn') = ?", arn, depth):
                links.append(link)
                if link["source"] not in seen:
                    seen.add(link["source"])
                    callers.append(link["source"])
        frontier = callers
        if not frontier:
            break
    return links


def roles_assumed(con: duckdb.DuckDBPyConnection, principal: str) -> list[dict[str, Any]]:
    """The roles ``principal`` assumed successfully, one link per role (the shape of :func:`role_assumers`)."""
    return _role_links(con, "principal = ?", principal, 1)


def principal_pivot(con: duckdb.DuckDBPyConnection, principal: str) -> dict[str, Any]:
    """A principal's activity: totals, APIs (successes, failures), sources, keys, agents and role chains.

    ``principal`` may be an ARN or a name, or the person behind an SSO role (its session name, e.g.
    an e-mail): then only that person's events are shown (``"actor"`` is set). The best match is
    used and the others are listed in ``"matches"``.
    """
    resolved = resolve_identity(con, principal)
    if resolved is None:
        return {"principal": principal, "matches": [], "events": 0}
    column, value, matches = resolved
    where, params = f"{column} = ?", [value]
    identity = _one(
        con,
        "SELECT any_value(principal) AS principal, any_value(identity_type) AS identity_type, "
        f"any_value(account_id) AS account_id, count(DISTINCT actor) AS actors FROM events WHERE {where}",
        params,
    )
    return {
        "actor": value if column == "actor" else None,
        "matches": matches,
        **identity,
        **_totals(con, where, params),
        "apis": api_summary(con, where, params),
        "source_ips": _sources(con, where, params),
        "usual_networks": usual_networks(con, where, params),
        "access_keys": _values(con, "access_key_id", where, params),
        "sessions": _values(con, "session_name", where, params),
        "user_agents": _values(con, "user_agent", where, params),
        "role_chains": _chains(con, where, params, _MAX_CHAIN_DEPTH, set()),
        "signin": signin_habit(con, where, params),
    }
