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
from trailsight.investigate.lake import iso, to_time
from trailsight.investigate.pivots import resolve_identity

__all__ = ["DAYS", "principal_profile"]

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
    "apis": [{value, count, days, weeks, frequency}], ... , "heatmap": 7 x 24 counts (Mon..Sun, UTC hours)}``.
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
    heat = [[0] * 24 for _ in range(7)]
    for dow, hour, count in con.execute(
        "SELECT isodow(timezone('UTC', event_time)) - 1, hour(timezone('UTC', event_time)), count(*) "
        f"FROM events WHERE {where} GROUP BY ALL",
        params,
    ).fetchall():
        heat[int(dow)][int(hour)] = int(count)
    profile["heatmap"] = heat
    profile.update(behaviour_summary(con, str(account or ""), str(arn or ""), until or last_t))
    return profile


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
