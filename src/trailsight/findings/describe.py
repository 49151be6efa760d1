"""Complete findings with what an analyst needs to act on them in one read.

:func:`describe` takes the findings the detectors grouped and fills in, from the lake's events:

* **unusual attributes** — for each of ``api, asn, country, city, user_agent, region, error_code,
  hour`` the values the finding's events carry that the principal (and/or its account) has never
  or rarely shown, with the usual values, their counts and frequency class;
* the **top-20 usual APIs** of the principal and of the account;
* **networks** (IP, ASN, org, city, country, kind) and **user agents**, access keys, session names;
* the **finding type** ``<Tactic>:<IdentityType>/AnomalousBehavior`` (``Unusual:`` when no tactic),
  severity on GuardDuty's bands and a confidence when the finding does not carry them yet;
* a **plain-language explanation** — one sentence of what happened, then one line per unusual
  attribute naming the actual values — and a **timeline** with the unusual events marked.

Usual behaviour is computed from history **strictly before** each finding's ``first_seen``, per
**actor** (the person behind an SSO permission-set role; for every other identity the principal
itself), and for the account; "principals in this account" counts actors. Frequency
classes (of a value for a principal or an account), with ``D`` days of history and ``W = ceil(D/7)`` weeks:

* *frequent* — seen in at least half of the weeks and on 4+ days a month on average (a history
  shorter than a month counts as one month: 4+ days in it, or every day of a history under 4 days);
* *infrequent* — seen on at least one day a month on average;
* *rare* — seen, but on less than one day a month;
* *unseen* — never seen before.

The queries are batched: a handful of queries for the whole set of findings (history is folded to
one row per account, principal, attribute, value and day first), never one per finding.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from trailsight.config import Settings
from trailsight.finding import (
    TACTICS,
    ApiCall,
    Evidence,
    Finding,
    NetworkInfo,
    TimelineEntry,
    UnusualAttribute,
)
from trailsight.findings.names import finding_type_for, person_name, short_name
from trailsight.scoring.policy import TACTIC_WEIGHT, confidence_for, severity_for, severity_label
from trailsight.store.state import plain_relation, raw_connection

__all__ = [
    "ATTRIBUTES",
    "FREQUENCY_CLASSES",
    "LAKE_COLUMNS",
    "describe",
    "frequency_class",
]

#: Attributes compared with the usual, and the SQL expression (over an events relation) giving each.
ATTRIBUTES: dict[str, str] = {
    "api": "event_name",
    "asn": "CASE WHEN asn IS NULL THEN NULL ELSE 'AS' || CAST(asn AS VARCHAR) || coalesce(' ' || as_org, '') END",
    "country": "country",
    "city": "CASE WHEN city IS NULL THEN NULL ELSE city || coalesce(', ' || country, '') END",
    "user_agent": "user_agent",
    "region": "region",
    "error_code": "error_code",
    "hour": "lpad(CAST(hour(timezone('UTC', event_time)) AS VARCHAR), 2, '0')",
}

FREQUENCY_CLASSES = ("frequent", "infrequent", "rare", "unseen")


_ATTRIBUTE_WORDS = {
    "api": "API",
    "asn": "network",
    "country": "country",
    "city": "city",
    "user_agent": "user agent",
    "region": "region",
    "error_code": "error code",
    "hour": "hour (UTC)",
}

_DAY = "CAST(timezone('UTC', event_time) AS DATE)"
_USUAL_SHOWN = 5  # usual values listed per unusual attribute
_TOP_APIS = 20
_MIN_DAYS_FOR_HOUR = 7  # working hours mean little with less history


# --------------------------------------------------------------------------- small pure helpers


def frequency_class(count: int, days: int, weeks: int, history_days: float) -> str:
    """Frequency class of a value seen ``count`` times on ``days`` days in ``weeks`` weeks of history.

    ``history_days`` is the length of the history the counts come from. "4+ days a month" is
    averaged over at least a month: a value seen on 3 days of an 11-day history is not frequent yet
    (4+ days are needed), unless the history is so short that it was seen on every day of it.
    """
    if count <= 0 or days <= 0:
        return "unseen"
    span = max(history_days, 1.0)
    total_weeks = max(1, math.ceil(span / 7))
    days_per_month = days * 30.0 / span
    frequent_days = min(4.0 * max(span, 30.0) / 30.0, float(math.ceil(span)))
    if weeks * 2 >= total_weeks and days >= frequent_days:
        return "frequent"
    if days_per_month >= 1:
        return "infrequent"
    return "rare"


def _span_words(days: float) -> str:
    if days >= 2:
        return f"{round(days)} days"
    hours = days * 24
    if hours >= 2:
        return f"{round(hours)} hours"
    minutes = max(1, round(hours * 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())  # no newlines or tabs inside one explanation line
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_middle(text: str, limit: int) -> str:
    """Keep both ends (user agents differ at the end: terraform-provider-aws/... resource names)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit * 3 // 5
    return text[:head] + "…" + text[-(limit - head - 1) :]


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


# --------------------------------------------------------------------------- data gathered per finding


@dataclass
class _Stats:
    """Prior counts of one value in one scope."""

    count: int = 0
    days: int = 0
    weeks: int = 0
    principals: int = 0


@dataclass
class _Context:
    """Everything the queries return about one finding."""

    events: list[dict[str, Any]]
    values: dict[str, Counter[str]]  # attribute -> value -> events in the finding
    event_values: dict[str, dict[str, str]]  # event_id -> attribute -> value
    principal_stats: dict[tuple[str, str], _Stats]  # (attribute, value) -> stats
    account_stats: dict[tuple[str, str], _Stats]
    account_usual: dict[str, list[tuple[str, _Stats]]]  # attribute -> top values
    history_days: float
    history_events: int
    active_days: int  # distinct UTC days with activity in the history (the calendar span is history_days)
    account_history_days: float
    account_principals: int


def _long(events: str, where: str) -> str:
    """SQL: the events matching ``where`` in long form (one row per attribute value)."""
    columns = ", ".join(f"CAST({expr} AS VARCHAR) AS {name}" for name, expr in ATTRIBUTES.items())
    return (
        "SELECT event_id, account_id, principal, event_time, day, attribute, value FROM ("
        "SELECT event_id, account_id, actor AS principal, event_time, "
        f"CAST(timezone('UTC', event_time) AS DATE) AS day, "
        f"{columns} FROM {events} WHERE {where}"
        f") UNPIVOT (value FOR attribute IN ({', '.join(ATTRIBUTES)}))"
    )


#: The event columns :func:`describe` reads (a caller may hand it only these).
LAKE_COLUMNS = (
    "event_id",
    "event_time",
    "account_id",
    "principal",
    "actor",
    "event_name",
    "service",
    "event_source",
    "error_code",
    "source_ip",
    "user_agent",
    "ip_kind",
    "net_class",
    "asn",
    "as_org",
    "city",
    "country",
    "region",
    "access_key_id",
    "session_name",
    "identity_type",
    "tactic",
    "technique",
    "api_risk",
)

#: What :func:`_gather` reads of each event: the columns above but the grouping keys, the time
#: as epoch microseconds.
_EVENT_COLUMNS = tuple(
    "epoch_us(e.event_time) AS t" if c == "event_time" else c
    for c in LAKE_COLUMNS
    if c not in ("account_id", "principal", "actor")
)


def _gather(con: duckdb.DuckDBPyConnection, events: str, findings: Sequence[Finding]) -> dict[str, _Context]:
    keys = pa.table(
        {
            "finding_id": [f.id for f in findings],
            # History is kept per actor (the person behind an SSO role; else the principal itself).
            "principal": [f.actor or f.principal for f in findings],
            "account_id": [f.account_id for f in findings],
            "first_seen": pa.array([f.first_seen.astimezone(UTC) for f in findings], pa.timestamp("us", tz="UTC")),
            "last_seen": pa.array([f.last_seen.astimezone(UTC) for f in findings], pa.timestamp("us", tz="UTC")),
        }
    )
    fev_rows = [(f.id, e) for f in findings for e in dict.fromkeys(f.event_ids)]
    fev = pa.table({"finding_id": [r[0] for r in fev_rows], "event_id": [r[1] for r in fev_rows]})
    con.register("_ts_keys_in", keys)
    con.register("_ts_fev_in", fev)
    try:
        return _gather_registered(con, events, findings)
    finally:
        for name in ("_ts_keys", "_ts_fev", "_ts_ev", "_ts_daily", "_ts_same", "_ts_fvals"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        con.unregister("_ts_keys_in")
        con.unregister("_ts_fev_in")


def _gather_registered(con: duckdb.DuckDBPyConnection, events: str, findings: Sequence[Finding]) -> dict[str, _Context]:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ts_keys AS SELECT finding_id, principal, account_id, first_seen, "
        "CAST(timezone('UTC', first_seen) AS DATE) AS fday FROM _ts_keys_in"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _ts_fev AS SELECT * FROM _ts_fev_in")
    # Read the lake once: the columns used below, of the findings' accounts, up to their last event.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _ts_ev AS SELECT {', '.join(LAKE_COLUMNS)} FROM {events} "
        "WHERE account_id IN (SELECT account_id FROM _ts_keys_in) "
        "AND event_time <= (SELECT max(last_seen) FROM _ts_keys_in)"
    )
    events = "_ts_ev"
    finding_events = _finding_events(con, events)
    event_values, values = _finding_values(con, events)
    _fold_history(con, events)
    principal_stats = _principal_stats(con)
    account_stats = _account_stats(con)
    account_usual_raw = _account_usual(con)
    spans, account_spans = _spans(con, events)
    contexts: dict[str, _Context] = {}
    for f in findings:
        first_us, n_events, active_days = spans.get(f.id, (None, 0, 0))
        history_days = (
            (f.first_seen - datetime.fromtimestamp(first_us / 1_000_000, tz=UTC)).total_seconds() / 86400
            if first_us is not None
            else 0.0
        )
        acct_first, principals = account_spans.get(f.id, (None, 0))
        account_days = (
            (f.first_seen - datetime.fromtimestamp(acct_first / 1_000_000, tz=UTC)).total_seconds() / 86400
            if acct_first is not None
            else 0.0
        )
        usual: dict[str, list[tuple[str, _Stats]]] = defaultdict(list)
        for (attribute, value), (stats, _) in account_usual_raw.get(f.id, {}).items():
            usual[attribute].append((value, stats))
        for attribute in usual:
            usual[attribute].sort(key=lambda item: (-item[1].count, item[0]))
            del usual[attribute][_TOP_APIS:]
        contexts[f.id] = _Context(
            events=finding_events.get(f.id, []),
            values={a: c for a, c in values.get(f.id, {}).items()},
            event_values={e: dict(v) for e, v in event_values.get(f.id, {}).items()},
            principal_stats=principal_stats.get(f.id, {}),
            account_stats=account_stats.get(f.id, {}),
            account_usual=dict(usual),
            history_days=max(0.0, history_days),
            history_events=int(n_events),
            active_days=int(active_days),
            account_history_days=max(0.0, account_days),
            account_principals=int(principals),
        )
    return contexts


def _finding_events(con: duckdb.DuckDBPyConnection, events: str) -> dict[str, list[dict[str, Any]]]:
    """Each finding's own events (its columns of :data:`_EVENT_COLUMNS`), in time order."""
    rows = con.execute(
        f"SELECT fe.finding_id, {', '.join(c if '(' in c else 'e.' + c for c in _EVENT_COLUMNS)} FROM _ts_fev fe "
        f"JOIN {events} e ON e.event_id = fe.event_id ORDER BY fe.finding_id, t, e.event_id"
    ).fetchall()
    names = ["finding_id", *[c.split(" AS ")[-1] for c in _EVENT_COLUMNS]]
    finding_events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for row in rows:
        record = dict(zip(names, row, strict=True))
        key = (record["finding_id"], record["event_id"])
        if key in seen:
            continue
        seen.add(key)
        record["event_time"] = datetime.fromtimestamp(record.pop("t") / 1_000_000, tz=UTC)
        finding_events[record["finding_id"]].append(record)
    return finding_events


def _finding_values(
    con: duckdb.DuckDBPyConnection, events: str
) -> tuple[dict[str, dict[str, dict[str, str]]], dict[str, dict[str, Counter[str]]]]:
    """Each finding's attribute values, event by event and counted (table ``_ts_fvals``)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ts_fvals AS "
        "SELECT fe.finding_id, l.event_id, l.attribute, l.value FROM _ts_fev fe "
        f"JOIN ({_long(events, 'event_id IN (SELECT event_id FROM _ts_fev)')}) l ON l.event_id = fe.event_id"
    )
    event_values: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    values: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for fid, eid, attribute, value in con.execute(
        "SELECT DISTINCT finding_id, event_id, attribute, value FROM _ts_fvals"
    ).fetchall():
        event_values[fid][eid][attribute] = value
        values[fid][attribute][value] += 1
    return event_values, values


def _fold_history(con: duckdb.DuckDBPyConnection, events: str) -> None:
    """History folded per day (``_ts_daily``), and the same-day history before each finding (``_ts_same``)."""
    in_accounts = "account_id IN (SELECT account_id FROM _ts_keys)"
    daily_where = f"{in_accounts} AND {_DAY} < (SELECT max(fday) FROM _ts_keys)"
    same_where = f"{in_accounts} AND {_DAY} IN (SELECT fday FROM _ts_keys)"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ts_daily AS SELECT account_id, principal, day, attribute, value, count(*) AS n "
        f"FROM ({_long(events, daily_where)}) "
        "GROUP BY ALL"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ts_same AS "
        "SELECT k.finding_id, l.principal, l.attribute, l.value, count(*) AS n "
        f"FROM _ts_keys k JOIN ({_long(events, same_where)}) l "
        "ON l.account_id = k.account_id AND l.day = k.fday AND l.event_time < k.first_seen GROUP BY ALL"
    )


def _principal_stats(con: duckdb.DuckDBPyConnection) -> dict[str, dict[tuple[str, str], _Stats]]:
    """Principal scope: every value the principal showed before first_seen (top ones + the finding's)."""
    principal_rows = con.execute(
        """
        WITH r AS (
            SELECT k.finding_id, d.attribute, d.value, d.day, d.n FROM _ts_keys k JOIN _ts_daily d
              ON d.account_id = k.account_id AND d.principal = k.principal AND d.day < k.fday
            UNION ALL
            SELECT s.finding_id, s.attribute, s.value, k.fday, s.n FROM _ts_same s JOIN _ts_keys k
              ON k.finding_id = s.finding_id AND s.principal = k.principal
        ), g AS (
            SELECT finding_id, attribute, value, sum(n)::BIGINT AS n, count(DISTINCT day) AS days,
                   count(DISTINCT date_trunc('week', day)) AS weeks
            FROM r GROUP BY ALL
        )
        SELECT g.finding_id, g.attribute, g.value, g.n, g.days, g.weeks FROM g
        LEFT JOIN (SELECT DISTINCT finding_id, attribute, value FROM _ts_fvals) v
          ON v.finding_id = g.finding_id AND v.attribute = g.attribute AND v.value = g.value
        QUALIFY v.value IS NOT NULL
             OR row_number() OVER (PARTITION BY g.finding_id, g.attribute ORDER BY g.n DESC, g.value) <= ?
        """,
        [_TOP_APIS],
    ).fetchall()
    principal_stats: dict[str, dict[tuple[str, str], _Stats]] = defaultdict(dict)
    for fid, attribute, value, n, days, weeks in principal_rows:
        principal_stats[fid][(attribute, value)] = _Stats(count=int(n), days=int(days), weeks=int(weeks))
    return principal_stats


def _account_stats(con: duckdb.DuckDBPyConnection) -> dict[str, dict[tuple[str, str], _Stats]]:
    """Account scope, exact, for the finding's own values (with how many principals used each)."""
    account_rows = con.execute(
        """
        WITH v AS (SELECT DISTINCT finding_id, attribute, value FROM _ts_fvals),
        r AS (
            SELECT k.finding_id, d.attribute, d.value, d.day, d.principal, d.n FROM _ts_keys k
              JOIN v ON v.finding_id = k.finding_id
              JOIN _ts_daily d ON d.account_id = k.account_id AND d.attribute = v.attribute
               AND d.value = v.value AND d.day < k.fday
            UNION ALL
            SELECT s.finding_id, s.attribute, s.value, k.fday, s.principal, s.n FROM _ts_same s
              JOIN _ts_keys k ON k.finding_id = s.finding_id
              JOIN v ON v.finding_id = s.finding_id AND v.attribute = s.attribute AND v.value = s.value
        )
        SELECT finding_id, attribute, value, sum(n)::BIGINT, count(DISTINCT day),
               count(DISTINCT date_trunc('week', day)), count(DISTINCT principal)
        FROM r GROUP BY ALL
        """
    ).fetchall()
    account_stats: dict[str, dict[tuple[str, str], _Stats]] = defaultdict(dict)
    for fid, attribute, value, n, days, weeks, principals in account_rows:
        account_stats[fid][(attribute, value)] = _Stats(int(n), int(days), int(weeks), int(principals))
    return account_stats


def _account_usual(con: duckdb.DuckDBPyConnection) -> dict[str, dict[tuple[str, str], tuple[_Stats, bool]]]:
    """Account scope, usual values: per (account, day of the finding), then the same day added per finding."""
    usual_rows = con.execute(
        """
        SELECT k.finding_id, g.attribute, g.value, g.n, g.days, g.weeks, g.same_week FROM (
            SELECT k2.account_id, k2.fday, d.attribute, d.value, sum(d.n)::BIGINT AS n, count(DISTINCT d.day) AS days,
                   count(DISTINCT date_trunc('week', d.day)) AS weeks,
                   date_trunc('week', max(d.day)) = date_trunc('week', k2.fday) AS same_week
            FROM (SELECT DISTINCT account_id, fday FROM _ts_keys) k2
            JOIN _ts_daily d ON d.account_id = k2.account_id AND d.day < k2.fday
            GROUP BY k2.account_id, k2.fday, d.attribute, d.value
            QUALIFY row_number() OVER (
                PARTITION BY k2.account_id, k2.fday, d.attribute ORDER BY sum(d.n) DESC, d.value) <= ?
        ) g JOIN _ts_keys k ON k.account_id = g.account_id AND k.fday = g.fday
        """,
        [_TOP_APIS * 3],
    ).fetchall()
    same_rows = con.execute("SELECT finding_id, attribute, value, sum(n)::BIGINT FROM _ts_same GROUP BY ALL").fetchall()
    account_usual_raw: dict[str, dict[tuple[str, str], tuple[_Stats, bool]]] = defaultdict(dict)
    for fid, attribute, value, n, days, weeks, same_week in usual_rows:
        account_usual_raw[fid][(attribute, value)] = (_Stats(int(n), int(days), int(weeks)), bool(same_week))
    for fid, attribute, value, n in same_rows:
        stats, same_week = account_usual_raw[fid].get((attribute, value), (_Stats(), False))
        merged = _Stats(stats.count + int(n), stats.days + 1, stats.weeks + (0 if same_week else 1))
        account_usual_raw[fid][(attribute, value)] = (merged, True)
    return account_usual_raw


def _spans(
    con: duckdb.DuckDBPyConnection, events: str
) -> tuple[dict[str, tuple[Any, Any, Any]], dict[str, tuple[Any, Any]]]:
    """Spans of history and the number of principals in each account before each finding."""
    spans = {
        fid: (first, n, active)
        for fid, first, n, active in con.execute(
            "SELECT k.finding_id, epoch_us(min(e.event_time)), count(*), "
            f"count(DISTINCT CAST(timezone('UTC', e.event_time) AS DATE)) FROM _ts_keys k JOIN {events} e "
            "ON e.account_id = k.account_id AND e.actor = k.principal AND e.event_time < k.first_seen GROUP BY 1"
        ).fetchall()
    }
    account_spans = {
        fid: (first, principals)
        for fid, first, principals in con.execute(
            f"SELECT k.finding_id, epoch_us(min(e.event_time)), count(DISTINCT e.actor) FROM _ts_keys k "
            f"JOIN (SELECT account_id, actor, min(event_time) AS event_time FROM {events} "
            "WHERE account_id IN (SELECT account_id FROM _ts_keys) GROUP BY ALL) e "
            "ON e.account_id = k.account_id AND e.event_time < k.first_seen GROUP BY 1"
        ).fetchall()
    }
    return spans, account_spans


# --------------------------------------------------------------------------- building the description


def _evidence(
    values: Iterable[tuple[str, _Stats]], history_days: float, limit: int, by_days: bool = False
) -> list[Evidence]:
    """The top values with their classes: by calls, or ``by_days`` by active days (for hours of the day)."""
    if by_days:
        ranked = sorted(values, key=lambda item: (-item[1].days, -item[1].count, item[0]))[:limit]
    else:
        ranked = sorted(values, key=lambda item: (-item[1].count, item[0]))[:limit]
    return [
        Evidence(
            value=v,
            count=s.count,
            days=s.days,
            frequency=frequency_class(s.count, s.days, s.weeks, history_days),
        )
        for v, s in ranked
    ]


def _principal_values(ctx: _Context, attribute: str) -> list[tuple[str, _Stats]]:
    return [(v, s) for (a, v), s in ctx.principal_stats.items() if a == attribute]


def _unusual_attributes(f: Finding, ctx: _Context) -> list[UnusualAttribute]:
    result: list[UnusualAttribute] = []
    # Hours judged on the caller's local clock (off_hours) are told by the detector's own line;
    # the UTC hours of this table would say something else.
    local_clock = any(r.detector == "off_hours" and (r.details or {}).get("clock") == "local" for r in f.reasons)
    for attribute in ATTRIBUTES:
        if attribute == "hour" and (ctx.history_days < _MIN_DAYS_FOR_HOUR or local_clock):
            continue
        observed = ctx.values.get(attribute, Counter())
        if not observed:
            continue
        # The usual hours are the ones seen on the most days (a busy afternoon is not a habit).
        by_days = attribute == "hour"
        principal_usual = _evidence(_principal_values(ctx, attribute), ctx.history_days, _USUAL_SHOWN, by_days)
        account_usual = _evidence(ctx.account_usual.get(attribute, []), ctx.account_history_days, _USUAL_SHOWN, by_days)
        for value, _ in sorted(observed.items(), key=lambda item: (-item[1], item[0])):
            p = ctx.principal_stats.get((attribute, value), _Stats())
            a = ctx.account_stats.get((attribute, value), _Stats())
            p_class = frequency_class(p.count, p.days, p.weeks, ctx.history_days)
            a_class = frequency_class(a.count, a.days, a.weeks, ctx.account_history_days)
            for_principal = p_class in ("unseen", "rare")
            for_account = a_class in ("unseen", "rare")
            if attribute == "city" and ", " in value:
                # A new city in a country that is itself new says nothing more than the country line.
                country = value.rsplit(", ", 1)[-1]
                if ctx.principal_stats.get(("country", country), _Stats()).count == 0:
                    continue
            if not (for_principal or for_account):
                continue
            result.append(
                UnusualAttribute(
                    attribute=attribute,
                    value=value,
                    unusual_for_principal=for_principal,
                    unusual_for_account=for_account,
                    principal_usual=principal_usual,
                    account_usual=account_usual,
                    principals_in_account_using=a.principals,
                )
            )
    return result


def _anomalous_apis(events: list[dict[str, Any]]) -> list[ApiCall]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        grouped[(e.get("service") or "unknown", e["event_name"])].append(e)
    calls = []
    for (service, name), items in grouped.items():
        errors = Counter(str(e["error_code"]) for e in items if e.get("error_code"))
        calls.append(
            ApiCall(
                service=service,
                event_name=name,
                success=len(items) - sum(errors.values()),
                failure=sum(errors.values()),
                error_codes=dict(errors),
            )
        )
    calls.sort(key=lambda c: (c.service, -(c.success + c.failure), c.event_name))
    return calls


def _networks(events: list[dict[str, Any]]) -> list[NetworkInfo]:
    by_ip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("source_ip"):
            by_ip[str(e["source_ip"])].append(e)
    nets = []
    for ip, items in by_ip.items():
        first = items[0]
        nets.append(
            NetworkInfo(
                ip=ip,
                ip_kind=first.get("ip_kind"),
                net_class=first.get("net_class"),
                asn=int(first["asn"]) if first.get("asn") is not None else None,
                as_org=first.get("as_org"),
                city=first.get("city"),
                country=first.get("country"),
                events=len(items),
            )
        )
    nets.sort(key=lambda n: (-n.events, n.ip))
    return nets


def _ranked(values: Iterable[Any]) -> list[str]:
    counts = Counter(str(v) for v in values if v)
    return [v for v, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _pick_tactic(f: Finding, events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    if f.tactic:
        return f.tactic, f.technique
    scored = [
        (float(e.get("api_risk") or 0.0), e["tactic"], e.get("technique")) for e in events if e.get("tactic") in TACTICS
    ]
    if not scored:
        return None, f.technique
    best = max(scored, key=lambda item: (item[0], TACTIC_WEIGHT.get(item[1], 0.0)))
    return best[1], f.technique or best[2]


def _usual_words(usual: list[Evidence], attribute: str, limit: int = 2) -> str:
    shown = [u for u in usual if u.frequency != "unseen"][:limit]
    if not shown:
        return ""
    return ", ".join(f"{_show(attribute, u.value)} ({u.frequency})" for u in shown)


def _show(attribute: str, value: str) -> str:
    if attribute == "hour":
        return f"{value}:00"
    if attribute == "user_agent":
        return repr(_clip_middle(value, 140))
    return _clip(value, 80)


def _line(f: Finding, ctx: _Context, u: UnusualAttribute, name: str) -> str:
    hist = _span_words(ctx.history_days)
    value = _show(u.attribute, u.value)
    p = ctx.principal_stats.get((u.attribute, u.value), _Stats())
    a = ctx.account_stats.get((u.attribute, u.value), _Stats())
    others = max(0, u.principals_in_account_using - (1 if p.count else 0))
    if ctx.account_principals > 1:
        peers = (
            f"{others} of {ctx.account_principals} principals in this account {'has' if others == 1 else 'have'}"
            if others
            else f"none of the {ctx.account_principals} principals in this account has"
        )
    else:
        peers = "no other principal in this account has" if not others else f"{others} other principals have"
    usual = _usual_words(u.principal_usual, u.attribute)
    usual_part = f"; {name} usually uses {usual}" if usual else ""
    if u.attribute == "api":
        if ctx.history_events == 0:
            acct_hist = _span_words(ctx.account_history_days)
            return f"{value}: {peers} called it in {acct_hist} of account history"
        if p.count == 0:
            return f"{name} has never called {value} in {hist} of history; {peers}"
        return f"{name} has called {value} only {_times(p.count)} in {hist} of history (rare); {peers}"
    if u.attribute == "asn":
        where = _where(ctx, u.value)
        lead = "first call from" if p.count == 0 else "rare call from"
        usual_net = _usual_words(u.principal_usual, "asn", 1)
        tail = f"; {name} usually works from {usual_net}" if usual_net else ""
        acct = "" if a.count else "; new for the whole account"
        return f"{lead} {value}{where}{tail}{acct}"
    if u.attribute == "country":
        lead = "first activity from country" if p.count == 0 else "rare activity from country"
        acct = "" if a.count else " (new for the whole account)"
        return f"{lead} {value}{acct}{usual_part}"
    if u.attribute == "city":
        lead = "first activity from" if p.count == 0 else "rare activity from"
        return f"{lead} {value}{usual_part}"
    if u.attribute == "user_agent":
        lead = "first use of user agent" if p.count == 0 else "rare user agent"
        acct = "" if a.count else " (never seen in this account)"
        top = next((e for e in u.principal_usual if e.frequency != "unseen"), None)
        usual_ua = f"; {name} usually uses {_clip_middle(top.value, 90)!r} ({top.frequency})" if top else ""
        return f"{lead} {value}{acct}{usual_ua}"
    if u.attribute == "region":
        lead = "first activity in region" if p.count == 0 else "rare activity in region"
        return f"{lead} {value}{usual_part}"
    if u.attribute == "error_code":
        failed = ctx.values.get("error_code", Counter()).get(u.value, 0)
        lead = f"{failed} call{'s' if failed != 1 else ''} failed with {value}"
        prior = "never before for " + name if p.count == 0 else f"only {_times(p.count)} before for {name}"
        return f"{lead}, {prior}"
    if u.attribute == "hour":
        # The hours seen on the most active days, as the table ranks them.
        hours = sorted(
            (e for e in u.principal_usual if e.frequency != "unseen" and e.value != u.value),
            key=lambda e: (-e.days, -e.count, e.value),
        )[:3]
        active = f"{ctx.active_days} active day{'s' if ctx.active_days != 1 else ''}"
        if p.count == 0:
            lead = f"active at {value} UTC, an hour {name} has never worked in {hist} of history"
            of_days = f"of its {active}"
        else:
            lead = (
                f"active at {value} UTC, an hour {name} worked in on only {p.days} of its {active} in {hist} of history"
            )
            of_days = "of them"
        if not hours:
            return lead if p.count else f"{lead} ({active})"
        usual_hours = _and([f"{e.value}:00" for e in hours])
        on_days = _and([str(e.days) for e in hours])
        # "usually" only when the top hour is a habit (frequent); else the hours it was seen most.
        usually = "usually" if hours[0].frequency == "frequent" else "most often"
        return f"{lead}; {usually} active around {usual_hours} UTC (on {on_days} {of_days})"
    return f"unusual {_ATTRIBUTE_WORDS.get(u.attribute, u.attribute)} {value}"


_MAX_API_LINES = 5
_MAX_VALUE_LINES = 2


def _attribute_lines(f: Finding, ctx: _Context, unusual: list[UnusualAttribute], name: str) -> list[str]:
    """One line per unusual value: riskiest APIs first, then where from, agent, region, errors, hour.

    Long lists are cut (5 APIs, 2 values of each other attribute) and the rest summed up in one line.
    """
    risk: dict[str, float] = defaultdict(float)
    for e in ctx.events:
        risk[e["event_name"]] = max(risk[e["event_name"]], float(e.get("api_risk") or 0.0))
    apis = sorted(
        (u for u in unusual if u.attribute == "api"),
        key=lambda u: (-risk.get(u.value, 0.0), -ctx.values["api"].get(u.value, 0), u.value),
    )
    lines = [_line(f, ctx, u, name) for u in apis[:_MAX_API_LINES]]
    rest = apis[_MAX_API_LINES:]
    if rest:
        never = [u.value for u in rest if ctx.principal_stats.get(("api", u.value), _Stats()).count == 0]
        shown = ", ".join(_clip(v, 60) for v in (never or [u.value for u in rest])[:8])
        more = len(rest) - min(8, len(never or rest))
        lines.append(
            f"{len(rest)} more API{'s' if len(rest) != 1 else ''} new or rare for {name}: {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    for attribute in ATTRIBUTES:
        if attribute == "api":
            continue
        items = [u for u in unusual if u.attribute == attribute]
        cap = 1 if attribute == "user_agent" else _MAX_VALUE_LINES  # agents vary per run: one line is enough
        lines += [_line(f, ctx, u, name) for u in items[:cap]]
        if len(items) > cap:
            extra = len(items) - cap
            lines.append(f"and {extra} other unusual {_ATTRIBUTE_WORDS[attribute]} value{'s' if extra != 1 else ''}")
    return lines


def _where(ctx: _Context, asn_value: str) -> str:
    for e in ctx.events:
        if e.get("asn") is not None and asn_value.startswith(f"AS{e['asn']}"):
            place = ", ".join(str(x) for x in (e.get("city"), e.get("country")) if x)
            return f" ({place})" if place else ""
    return ""


def _summary(f: Finding, ctx: _Context, name: str, tactic: str | None) -> str:
    events = ctx.events
    n = len(events) or f.count
    apis = _ranked(e["event_name"] for e in events) or [a.event_name for a in f.anomalous_apis]
    failed = sum(1 for e in events if e.get("error_code"))
    ips = _ranked(e.get("source_ip") for e in events)
    start = f.first_seen.astimezone(UTC)
    end = f.last_seen.astimezone(UTC)
    when = (
        f"at {start:%H:%M} UTC on {start:%Y-%m-%d}"
        if end - start < timedelta(minutes=1)
        else f"between {start:%H:%M} and {end:%H:%M} UTC on {start:%Y-%m-%d}"
        if start.date() == end.date()
        else f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    )
    api_words = ", ".join(_clip(a, 60) for a in apis[:4]) + (f" and {len(apis) - 4} more" if len(apis) > 4 else "")
    from_words = (
        f" from {_clip(ips[0], 45)}"
        + (f" and {len(ips) - 1} other address{'es' if len(ips) > 2 else ''}" if len(ips) > 1 else "")
        if ips
        else ""
    )
    fail_words = f"; {failed} failed" if failed else ""
    tactic_words = f" ({_tactic_words(tactic)})" if tactic else ""
    return (
        f"{name} ({f.identity_type}) made {n} unusual call{'s' if n != 1 else ''} to "
        f"{len(apis)} API{'s' if len(apis) != 1 else ''}{tactic_words} — {api_words} —{from_words} {when}{fail_words}."
    )


def _tactic_words(tactic: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", tactic).lower()


def _their_lines(f: Finding, explained: list[UnusualAttribute], name: str) -> list[str]:
    """The detection stage's own explanation lines, less those our lines already say."""
    apis = {u.value for u in explained if u.attribute == "api"}
    # The behaviour model's per-API lines are summed up in the "(peers)" lines.
    modelled = {r.message for r in f.reasons if r.detector == "behaviour_model"}
    kept = []
    for line in f.explanation:
        if line in modelled:
            continue
        words = set(re.split(r"[^A-Za-z0-9_]+", line))
        if apis & words and "never" in line:
            continue  # "cloudtrail:DeleteTrail was never called by this principal before"
        if line.startswith((f"{name} made ", f"{f.principal} made ")):
            continue  # the summary sentence, said better above
        if line.startswith("active at ") and any(u.attribute == "hour" for u in explained):
            continue  # the hour line, said above with the usual hours
        kept.append(line)
    return kept


def _short_names(text: str | None, account_id: str = "") -> str:
    """Readable peer names; a peer in another account says which (``role deploy (account 1234)``)."""
    names = []
    for arn in (p.strip() for p in (text or "").split(",")):
        if not arn:
            continue
        parts = arn.split(":")
        other = parts[4] if len(parts) > 5 and parts[4] and account_id and parts[4] != str(account_id) else ""
        names.append(short_name(arn) + (f" (account {other})" if other else ""))
    return ", ".join(names)


def _listed(names: str, total: int) -> str:
    """``ana, ben, cy`` when all ``total`` are named, ``ana, ben, cy and 2 more`` when the list was cut."""
    shown = len([n for n in names.split(", ") if n]) if names else 0
    if not shown:
        return ""
    return names if total <= shown else f"{names} and {total - shown} more"


def _peer_notes(f: Finding) -> list[str]:
    """One line on what the principal's peers do, one on its automation status, where they shaped the score."""
    name = short_name(f.principal)
    none_use: list[str] = []
    some_use: list[tuple[str, int, str]] = []
    peers, group = 0, ""
    auto_lines: list[str] = []
    other: list[str] = []
    likelihood = 0.0
    for r in f.reasons:
        d = r.details or {}
        if r.detector == "behaviour_model":
            peers = max(peers, int(d.get("peers") or 0))
            group = group or _short_names(d.get("peer_group"), f.account_id)
            api = str(d.get("api") or "").split(":")[-1]
            if int(d.get("peers_using") or 0):
                some_use.append((api, int(d["peers_using"]), _short_names(d.get("peers_using_names"), f.account_id)))
            elif api:
                none_use.append(api)
        elif r.detector == "automation_misuse":
            likelihood = max(likelihood, float(d.get("automation") or 0.0))
            auto_lines.append(str(d.get("how") or r.message))
        elif any("peer" in str(k) for k in d) or "peer" in r.code:
            other.append(f"(peer comparison) {r.message}")  # a plug-in detector's own peer evidence
        elif any("automation" in str(k) for k in d) or "automation" in r.code:
            other.append(f"(automation) {r.message}")
    notes = []
    shown = _listed(group, peers)
    in_group = f" ({shown})" if shown else ""
    if peers and none_use:
        listed = ", ".join(none_use[:4]) + (f" and {len(none_use) - 4} more" if len(none_use) > 4 else "")
        if peers == 1:
            notes.append(f"(peers) {name}'s one close peer{in_group} does not call {listed}")
        else:
            notes.append(f"(peers) none of {name}'s {peers} closest peers{in_group} call {listed}")
    for api, using, who in some_use[:2]:
        verb = "calls" if using == 1 else "call"
        users = _listed(who, using)
        users = f" ({users})" if users else ""
        if peers == 1:
            notes.append(f"(peers) {name}'s one close peer{users} calls {api}, so it weighs less")
        else:
            closest = f"{name}'s {peers} closest peers" if peers else f"{name}'s closest peers"
            notes.append(f"(peers) {using} of {closest}{users} {verb} {api}, so it weighs less")
    if auto_lines:
        how = "; ".join(dict.fromkeys(auto_lines))
        notes.append(
            f"(automation) {name} behaves like automation ({likelihood:.0%} likely a machine, from its history): "
            f"used {how}; its working hours are not held against it"
        )
    return notes + list(dict.fromkeys(other))


def _describe_one(f: Finding, ctx: _Context) -> Finding:
    name = person_name(f.principal, f.actor)
    events = ctx.events
    identity = f.identity_type
    if not identity or identity == "Unknown":
        identity = (_ranked(e.get("identity_type") for e in events) or ["Unknown"])[0]
    f = replace(f, identity_type=identity)
    tactic, technique = _pick_tactic(f, events)
    unusual = f.unusual or _unusual_attributes(f, ctx)
    lines: list[str] = [_summary(f, ctx, name, tactic)]
    if ctx.history_events == 0:
        lines.append(f"{name} has no activity in the lake before this finding: everything it did is new for it")
        unusual_lines = [u for u in unusual if u.unusual_for_account]
    else:
        unusual_lines = [u for u in unusual if u.unusual_for_principal or u.unusual_for_account]
    lines += _attribute_lines(f, ctx, unusual_lines, name)
    lines += _peer_notes(f)
    if f.gated and not f.explanation:
        lines.append(
            f"Note: {name} has little history ({_span_words(ctx.history_days)}), so this rests on few observations"
        )
    explanation = list(dict.fromkeys([*lines, *_their_lines(f, unusual_lines, name)]))
    flagged = {(u.attribute, u.value) for u in unusual if u.unusual_for_principal}
    timeline = f.timeline or [
        TimelineEntry(
            event_id=e["event_id"],
            event_time=e["event_time"],
            event_name=e["event_name"],
            service=e.get("service") or "",
            error_code=e.get("error_code"),
            source_ip=e.get("source_ip"),
            unusual=any((a, v) in flagged for a, v in ctx.event_values.get(e["event_id"], {}).items() if a != "hour"),
            score=f.score,
        )
        for e in events
    ]
    score = f.score
    severity = f.severity if f.severity > 0 else severity_for(tactic, score)
    label = f.severity_label if f.severity > 0 and f.severity_label else severity_label(severity)
    confidence = f.confidence or confidence_for(
        ctx.history_days, sum(1 for u in unusual if u.unusual_for_principal), len(f.detectors), f.gated
    )
    usual_p = f.usual_apis_principal or _evidence(_principal_values(ctx, "api"), ctx.history_days, _TOP_APIS)
    usual_a = f.usual_apis_account or _evidence(ctx.account_usual.get("api", []), ctx.account_history_days, _TOP_APIS)
    title = f.title or _title(name, tactic, unusual, ctx)
    return replace(
        f,
        finding_type=f.finding_type or finding_type_for(tactic, identity),
        title=title,
        tactic=tactic,
        tactic_id=f.tactic_id or (TACTICS.get(tactic) if tactic else None),
        technique=technique,
        severity=severity,
        severity_label=label,
        confidence=confidence,
        count=f.count or len(events),
        unusual=unusual,
        anomalous_apis=f.anomalous_apis or _anomalous_apis(events),
        usual_apis_principal=usual_p,
        usual_apis_account=usual_a,
        networks=f.networks or _networks(events),
        user_agents=f.user_agents or _ranked(e.get("user_agent") for e in events),
        access_keys=f.access_keys or _ranked(e.get("access_key_id") for e in events),
        session_names=f.session_names or _ranked(e.get("session_name") for e in events),
        explanation=explanation,
        timeline=timeline,
    )


def _title(name: str, tactic: str | None, unusual: list[UnusualAttribute], ctx: _Context) -> str:
    new_apis = [u.value for u in unusual if u.attribute == "api" and u.unusual_for_principal]
    what = _tactic_words(tactic) if tactic else "unusual activity"
    if new_apis:
        more = f" +{len(new_apis) - 2}" if len(new_apis) > 2 else ""
        return _clip(f"{name}: {what} — new APIs {', '.join(new_apis[:2])}{more}", 140)
    other = next((u for u in unusual if u.unusual_for_principal), None)
    if other is not None:
        return _clip(f"{name}: {what} — new {_ATTRIBUTE_WORDS[other.attribute]} {other.value}", 140)
    return _clip(f"{name}: {what} — {len(ctx.events) or 'several'} unusual calls", 140)


def describe(
    findings: list[Finding], con: Any, *, settings: Settings | None = None, events: str = "events"
) -> list[Finding]:
    """Return each finding completed with usual/unusual evidence, explanation, networks and timeline.

    ``con`` is a DuckDB connection (or an Ibis DuckDB backend) where ``events`` names a table or view
    of normalised lake events holding the findings' events and the history before them.
    Fields the detection stage already filled (severity, confidence, tactic, title, timeline,
    unusual attributes) are kept; the explanation lines are put first, the finding's own after them.
    """
    del settings  # no options yet; kept for the contract
    if not findings:
        return []
    plain_relation(events, "describe")
    raw = raw_connection(con)
    contexts = _gather(raw, events, findings)
    return [_describe_one(f, contexts[f.id]) for f in findings]
