"""A principal's usual behaviour: APIs with frequency classes, networks, countries, agents, working hours.

:func:`principal_profile` returns plain JSON-ready data for ``trailsight profile`` and the web UI.
Frequency classes are the ones findings use (:func:`trailsight.findings.describe.frequency_class`),
over the principal's whole history in the lake (or up to ``until``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from trailsight.findings.describe import frequency_class
from trailsight.investigate.lake import fetch_rows, iso, iso_fields, to_time
from trailsight.investigate.networks import usual_networks
from trailsight.investigate.pivots import resolve_identity
from trailsight.investigate.signin import signin_habit

__all__ = [
    "DAYS",
    "behaviour_summary",
    "daily_counts",
    "exact_identity",
    "no_activity",
    "principal_activity",
    "principal_profile",
    "weekly_heatmap",
]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_DIMENSIONS: dict[str, str] = {
    "apis": "event_name",
    "services": "service",
    "networks": "CASE WHEN asn IS NULL THEN NULL ELSE 'AS' || CAST(asn AS VARCHAR) || coalesce(' ' || as_org, '') END",
    "countries": "country",
    "cities": "CASE WHEN city IS NULL THEN NULL ELSE city || coalesce(', ' || country, '') END",
    "source_ips": "source_ip",
    "user_agents": "user_agent",
    "agent_families": "ua_family",
    "regions": "region",
    "error_codes": "error_code",
    "access_keys": "access_key_id",
}


def principal_profile(
    con: duckdb.DuckDBPyConnection, principal: str, *, until: datetime | None = None, top: int = 50
) -> dict[str, Any]:
    """The usual behaviour of ``principal`` from the events in ``con``'s ``events``.

    ``principal`` is an ARN, a name, or the person behind an SSO role (then only their events count).

    Returns ``{"principal", "matches", "events", "first_seen", "last_seen", "history_days",
    "apis": [{value, count, days, weeks, frequency}], ... , "heatmap": 7 x 24 counts (Mon..Sun, UTC hours),
    "daily": [{day, events}]}``.
    """
    resolved = resolve_identity(con, principal)
    if resolved is None:
        return {"principal": principal, "matches": [], "events": 0}
    column, value, matches = resolved
    where = f"{column} = ?"
    params: list[Any] = [value]
    if until is not None:
        where += " AND event_time < ?"
        params.append(until)
    row = con.execute(
        "SELECT count(*), epoch_us(min(event_time)), epoch_us(max(event_time)), any_value(identity_type), "
        f"any_value(account_id), count(DISTINCT actor), any_value(principal) FROM events WHERE {where}",
        params,
    ).fetchone()
    assert row is not None
    n, first, last, identity, account, actors, arn = row
    first_t, last_t = to_time(first), to_time(last)
    span_end = until or last_t
    history_days = (span_end - first_t).total_seconds() / 86400 if first_t and span_end else 0.0
    profile: dict[str, Any] = {
        "principal": arn,
        "actor": value if column == "actor" else None,
        "matches": matches,
        "identity_type": identity,
        "account_id": account,
        "actors": int(actors or 0),
        "events": int(n),
        "first_seen": iso(first),
        "last_seen": iso(last),
        "history_days": round(history_days, 2),
    }
    for name, expr in _DIMENSIONS.items():
        rows = con.execute(
            f"SELECT v, count(*) AS n, count(DISTINCT CAST(timezone('UTC', event_time) AS DATE)) AS days, "
            "count(DISTINCT date_trunc('week', CAST(timezone('UTC', event_time) AS DATE))) AS weeks, "
            "count(*) FILTER (WHERE error_code IS NOT NULL) AS failures, "
            f"epoch_us(min(event_time)), epoch_us(max(event_time)) "
            f"FROM (SELECT *, CAST({expr} AS VARCHAR) AS v FROM events WHERE {where}) WHERE v IS NOT NULL "
            "GROUP BY v ORDER BY n DESC, v LIMIT ?",
            [*params, top],
        ).fetchall()
        profile[name] = [
            {
                "value": v,
                "count": int(c),
                "days": int(d),
                "weeks": int(w),
                "failures": int(fails),
                "frequency": frequency_class(int(c), int(d), int(w), history_days),
                "first_seen": iso(f),
                "last_seen": iso(lt),
            }
            for v, c, d, w, fails, f, lt in rows
        ]
    profile["heatmap"] = weekly_heatmap(con, where, params)
    profile["daily"] = daily_counts(con, where, params)
    profile["signin"] = signin_habit(con, where, params)
    profile.update(behaviour_summary(con, str(account or ""), str(arn or ""), until or last_t))
    return profile


def exact_identity(arn: str) -> tuple[str, list[Any]]:
    """``(where, params)`` for the events of ``arn`` taken as it is (no name resolution): a principal
    ARN, or the actor ARN of one person behind a shared role (``<role ARN>/<session name>``)."""
    return "(principal = ? OR actor = ?)", [arn, arn]


def weekly_heatmap(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[list[int]]:
    """Events matching ``where`` per weekday and hour: 7 rows (Mon..Sun, see :data:`DAYS`) x 24 UTC hours."""
    heat = [[0] * 24 for _ in range(7)]
    for dow, hour, count in con.execute(
        "SELECT isodow(timezone('UTC', event_time)) - 1, hour(timezone('UTC', event_time)), count(*) "
        f"FROM events WHERE {where} GROUP BY ALL",
        params,
    ).fetchall():
        heat[int(dow)][int(hour)] = int(count)
    return heat


def daily_counts(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Events matching ``where`` per UTC day, oldest first: ``[{"day": "YYYY-MM-DD", "events": n}]``."""
    rows = con.execute(
        "SELECT CAST(timezone('UTC', event_time) AS DATE) AS d, count(*) "
        f"FROM events WHERE {where} GROUP BY d ORDER BY d",
        params,
    ).fetchall()
    return [{"day": d.isoformat(), "events": int(n)} for d, n in rows]


def _activity_rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    return [iso_fields(row, "first", "last") for row in fetch_rows(con, sql, params)]


def no_activity(arn: str) -> dict[str, Any]:
    """:func:`principal_activity`'s answer for a principal without events (or an empty lake)."""
    return {
        "principal": arn,
        "events": 0,
        "first_seen": None,
        "last_seen": None,
        "days": 0,
        "identity_types": [],
        "accounts": [],
        "apis": [],
        "networks": [],
        "countries": [],
        "agents": [],
        "sessions": [],
        "heatmap": [[0] * 24 for _ in range(7)],
        "daily": [],
        "peers": [],
        "automation": None,
        "signin": None,
    }


def principal_activity(con: duckdb.DuckDBPyConnection, arn: str) -> dict[str, Any]:
    """Everything the lake says about ``arn`` (matched exactly, see :func:`exact_identity`), for a profile page.

    ``{"principal", "events", "first_seen", "last_seen", "days", "identity_types", "accounts",
    "apis": [{service, event_name, count, days, weeks, first, last, failures, frequency}],
    "networks": [{source_ip, ip_kind, asn, as_org, city, country, count, first, last}],
    "countries": [{country, count, days}], "agents": [{ua_family, user_agent, count, first, last}],
    "sessions": [{session_name, count, first}], "heatmap": 7 x 24, "daily": [{day, events}],
    "peers", "automation"}``; times are ISO 8601 UTC, frequency classes over the whole history.
    """
    where, params = exact_identity(arn)
    row = con.execute(
        "SELECT count(*), epoch_us(min(event_time)), epoch_us(max(event_time)), count(DISTINCT event_date), "
        f"list(DISTINCT identity_type), list(DISTINCT account_id) FROM events WHERE {where}",
        params,
    ).fetchone()
    n, first, last, days, types, accounts = row if row is not None else (0, None, None, 0, [], [])
    if not n:
        return no_activity(arn)
    first_t, last_t = to_time(first), to_time(last)
    history_days = (last_t - first_t).total_seconds() / 86400.0 if first_t and last_t else 0.0
    apis = _activity_rows(
        con,
        "SELECT service, event_name, count(*) AS count, count(DISTINCT event_date) AS days, "
        "count(DISTINCT date_trunc('week', timezone('UTC', event_time))) AS weeks, "
        "epoch_us(min(event_time)) AS first, epoch_us(max(event_time)) AS last, count(error_code) AS failures "
        f"FROM events WHERE {where} GROUP BY service, event_name ORDER BY count DESC, event_name, service LIMIT 200",
        params,
    )
    for api in apis:
        api["frequency"] = frequency_class(int(api["count"]), int(api["days"]), int(api["weeks"]), history_days)
    account_list = sorted(str(a) for a in accounts or [] if a)
    return {
        "principal": arn,
        "events": int(n),
        "first_seen": iso(first),
        "last_seen": iso(last),
        "days": int(days),
        "identity_types": sorted(str(t) for t in types or [] if t),
        "accounts": account_list,
        "apis": apis,
        "networks": _activity_rows(
            con,
            "SELECT source_ip, any_value(ip_kind) AS ip_kind, any_value(net_class) AS net_class, "
            "any_value(asn) AS asn, any_value(as_org) AS as_org, "
            "any_value(city) AS city, any_value(country) AS country, count(*) AS count, "
            "epoch_us(min(event_time)) AS first, epoch_us(max(event_time)) AS last "
            f"FROM events WHERE {where} GROUP BY source_ip ORDER BY count DESC, source_ip LIMIT 50",
            params,
        ),
        "usual_networks": usual_networks(con, where, params),
        "countries": _activity_rows(
            con,
            "SELECT coalesce(country, '?') AS country, count(*) AS count, count(DISTINCT event_date) AS days "
            f"FROM events WHERE {where} GROUP BY 1 ORDER BY count DESC, country LIMIT 50",
            params,
        ),
        "agents": _activity_rows(
            con,
            "SELECT ua_family, user_agent, count(*) AS count, epoch_us(min(event_time)) AS first, "
            f"epoch_us(max(event_time)) AS last FROM events WHERE {where} GROUP BY ua_family, user_agent "
            "ORDER BY count DESC, ua_family, user_agent LIMIT 30",
            params,
        ),
        "sessions": _activity_rows(
            con,
            "SELECT session_name, count(*) AS count, epoch_us(min(event_time)) AS first FROM events "
            f"WHERE {where} AND session_name IS NOT NULL GROUP BY session_name "
            "ORDER BY count DESC, session_name LIMIT 30",
            params,
        ),
        "heatmap": weekly_heatmap(con, where, params),
        "daily": daily_counts(con, where, params),
        "signin": signin_habit(con, where, params),
        **behaviour_summary(con, account_list[0] if account_list else "", arn, last_t),
    }


def behaviour_summary(
    con: duckdb.DuckDBPyConnection, account: str, principal: str, at: datetime | None, *, forget_days: int = 90
) -> dict[str, Any]:
    """Peers (most similar principals by behaviour) and automation status of ``principal`` as of ``at``.

    The same figures detection uses (:mod:`trailsight.features.behaviour`), from the
    ``forget_days`` before ``at``'s day: ``{"peers": [{principal, similarity}], "automation":
    {likelihood, is_automation, interactive_share, aws_network_share, hour_cover}}``.
    """
    import ibis

    from trailsight.features.asof import SECONDS_PER_DAY, prepare
    from trailsight.features.behaviour import AUTOMATION_AT, BehaviourContext, context_aggregates
    from trailsight.features.source import quiet_ibis

    if at is None:
        return {"peers": [], "automation": None}
    day = int(at.timestamp() // SECONDS_PER_DAY) + 1  # as of the end of the last day seen
    with quiet_ibis():
        events = prepare(ibis.duckdb.from_connection(con).table("events"))
        events = events.filter(events.day >= day - forget_days)
        ctx = BehaviourContext.from_expressions(context_aggregates(events), forget_days)
    figures = ctx.automation_figures(account, principal, day)
    automation = None
    if figures is not None:
        likelihood, inter, aws, cover = figures
        automation = {
            "likelihood": likelihood,
            "is_automation": likelihood >= AUTOMATION_AT,
            "interactive_share": inter,
            "aws_network_share": aws,
            "hour_cover": cover,
        }
    peers = [{"principal": p, "similarity": round(sim, 3)} for p, sim in ctx.peers_of(account, principal, day)]
    return {"peers": peers, "automation": automation}
