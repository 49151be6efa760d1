"""What a finding's calls did and touched: effects, resources, counterparties, as of each call.

For each finding, its events' requests and responses are read back from the lake and passed
through :mod:`trailsight.enrich.effects` (what each call did) and
:mod:`trailsight.enrich.touched` (what it acted on, and who else it involved).

Whether an account is *outside* the organisation is judged from history strictly before the
finding's first call (:func:`account_history`): an account is known from the first time it
appears as an account of the lake (``recipientAccountId``), as the account of a principal that
called in (a vendor's role, a partner's user), or as a counterparty of an earlier call (a
snapshot shared with a partner two weeks ago). A share with an account first named by a call
of the finding itself is a share with an unknown account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from trailsight.enrich.effects import (
    Call,
    Effect,
    EffectContext,
    account_of,
    call_from,
    created_principal,
    effects_of,
    load_kinds,
    load_rules,
    parse_json,
)
from trailsight.enrich.touched import Party, Touched, counterparties_of, merge, resources_of
from trailsight.finding import Counterparty, EffectEntry, Finding, ResourceEntry
from trailsight.findings.next_steps import next_steps
from trailsight.scoring.policy import EffectSeverity, finding_severity, severity_label
from trailsight.store.state import plain_relation, raw_connection

_PRINCIPAL_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):")
MAX_RESOURCES = 30
MAX_PARTIES = 30
MAX_EFFECTS = 30


@dataclass(frozen=True, kw_only=True)
class CallRow:
    """One event of a finding, with the columns the effect checks read."""

    event_id: str
    event_time: datetime
    call: Call
    resources_json: Any = None


@dataclass(frozen=True, kw_only=True)
class TimedEffect:
    """An effect with the event it came from."""

    event_id: str
    event_time: datetime
    effect: Effect


@dataclass(frozen=True, kw_only=True)
class Done:
    """What one finding's calls did: effects in time order, resources (with call counts), counterparties."""

    effects: list[TimedEffect] = field(default_factory=list)
    resources: list[tuple[Touched, int]] = field(default_factory=list)
    counterparties: list[Party] = field(default_factory=list)


@contextmanager
def _registered(db: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """``table`` registered as ``name`` on ``db`` for the block."""
    db.register(name, table)
    try:
        yield
    finally:
        db.unregister(name)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def call_of(row: Mapping[str, Any]) -> Call:
    """The :class:`~trailsight.enrich.effects.Call` of a lake row (the response read from ``raw``)."""
    response = None
    raw = parse_json(row.get("raw"))
    if isinstance(raw, dict):
        response = raw.get("responseElements")
    return call_from(
        event_source=row.get("event_source"),
        event_name=row.get("event_name"),
        request_parameters=row.get("request_parameters"),
        response_elements=response,
        error_code=row.get("error_code"),
        account_id=row.get("account_id"),
        caller=row.get("principal"),
        caller_type=row.get("identity_type"),
        session_name=row.get("session_name"),
    )


CALL_COLUMNS = (
    "event_id",
    "event_time",
    "event_source",
    "event_name",
    "request_parameters",
    "resources",
    "raw",
    "error_code",
    "account_id",
    "principal",
    "identity_type",
    "session_name",
)


def watched_names() -> list[str]:
    """The API names ``effects.csv`` lists: only their calls can name a counterparty."""
    return sorted({name for _, name in load_rules()})


def load_calls(con: Any, events: str, event_ids: Sequence[str], since: datetime, until: datetime) -> dict[str, CallRow]:
    """The calls of ``event_ids`` (found in ``[since, until]`` of the view ``events``), by event id."""
    plain_relation(events, "effects")
    if not event_ids:
        return {}
    db = raw_connection(con)
    with _registered(db, "_ts_touched_ids", pa.table({"event_id": list(dict.fromkeys(event_ids))})):
        table = db.sql(
            f"SELECT {', '.join(CALL_COLUMNS)} FROM {events} "
            "WHERE event_time >= ? AND event_time <= ? AND event_id IN (SELECT event_id FROM _ts_touched_ids)",
            params=[_utc(since), _utc(until)],
        ).to_arrow_table()
    out: dict[str, CallRow] = {}
    for row in table.to_pylist():
        out.setdefault(
            str(row["event_id"]),
            CallRow(
                event_id=str(row["event_id"]),
                event_time=_utc(row["event_time"]),
                call=call_of(row),
                resources_json=row.get("resources"),
            ),
        )
    return out


def account_history(con: Any, events: str, until: datetime) -> dict[str, datetime]:
    """When each account was first seen before ``until``: lake accounts, callers' accounts, counterparties."""
    plain_relation(events, "effects")
    db = raw_connection(con)
    first: dict[str, datetime] = {}

    def seen(account: str | None, when: datetime) -> None:
        if account and (account not in first or when < first[account]):
            first[account] = when

    cutoff = _utc(until)
    # One pass grouped by (account, principal); the principals' own accounts are read from the
    # few distinct ARNs in Python. Arrow, not fetchall: DuckDB hands TIMESTAMPTZ to Python
    # through pytz, which is not a dependency.
    pairs = db.sql(
        f"SELECT account_id AS a, principal AS p, min(event_time) AS t FROM {events} "
        "WHERE event_time < ? GROUP BY 1, 2",
        params=[cutoff],
    ).to_arrow_table()
    for row in pairs.to_pylist():
        when = _utc(row["t"])
        seen(row["a"], when)
        caller = _PRINCIPAL_ACCOUNT.match(str(row["p"] or ""))
        seen(caller.group(1) if caller else None, when)
    names = watched_names()
    lambda_names = sorted({n for source, n in load_rules() if source == "lambda.amazonaws.com"})
    versioned = " OR ".join("event_name LIKE ?" for _ in lambda_names)
    placeholders = ", ".join("?" for _ in names)
    rows = db.sql(
        f"SELECT event_time, event_source, event_name, request_parameters, error_code, account_id, principal, "
        f"identity_type, session_name FROM {events} "
        f"WHERE event_time < ? AND error_code IS NULL AND (event_name IN ({placeholders}) "
        # Lambda's versioned names (AddPermission20150331v2): its APIs followed by a date.
        f"OR (event_source = 'lambda.amazonaws.com' AND ({versioned or 'false'})))",
        params=[cutoff, *names, *[f"{n}20%" for n in lambda_names]],
    ).to_arrow_table()
    for row in rows.to_pylist():
        for effect in effects_of(call_of(row)):
            for who in effect.counterparties:
                seen(account_of(who), _utc(row["event_time"]))
    return first


def what_was_done(calls: Sequence[CallRow], first_seen: Mapping[str, datetime]) -> Done:
    """Effects, resources and counterparties of one finding's calls, in time order.

    Accounts are judged as of the finding's first call: one first named by any call of the
    finding is unknown to all of them (an attacker's second share with his own account is no
    more familiar than the first). The same effect said twice is listed once.
    """
    ordered = sorted(calls, key=lambda c: (c.event_time, c.event_id))
    if not ordered:
        return Done()
    start = ordered[0].event_time
    known = frozenset(a for a, when in first_seen.items() if when < start)
    created: set[str] = set()
    effects: dict[tuple[str, str], TimedEffect] = {}
    touched: list[list[Touched]] = []
    parties: dict[tuple[str, str], Party] = {}
    for row in ordered:
        ctx = EffectContext(known_accounts=known, recent_principals=frozenset(created))
        found = effects_of(row.call, ctx)
        for e in found:
            effects.setdefault(
                (e.kind, e.description), TimedEffect(event_id=row.event_id, event_time=row.event_time, effect=e)
            )
        here = resources_of(row.call.request, row.call.response, row.resources_json)
        # What an effect names and no field did (a trail's name, a flow log id) is touched too.
        here += [
            Touched(type=e.resource_type or "resource", id=r) for e in found for r in e.resources if not _named(r, here)
        ]
        touched.append(here)
        for party in counterparties_of(row.call.event_name, row.call.response, found):
            parties.setdefault((party.kind, party.id), party)
        name = created_principal(row.call)
        if name:
            created.add(name)
    return Done(
        effects=list(effects.values())[:MAX_EFFECTS],
        resources=merge(touched, MAX_RESOURCES, first=[r for t in effects.values() for r in t.effect.resources]),
        counterparties=list(parties.values())[:MAX_PARTIES],
    )


def _named(resource: str, touched: Sequence[Touched]) -> bool:
    return any(t.id == resource or t.id.endswith((f"/{resource}", f":{resource}")) for t in touched)


def _first_calls(con: Any, events: str, principals: Sequence[str], until: datetime) -> dict[str, datetime]:
    """Each principal's first event before ``until`` (its history starts there)."""
    db = raw_connection(con)
    with _registered(db, "_ts_touched_principals", pa.table({"principal": list(dict.fromkeys(principals))})):
        table = db.sql(
            f"SELECT principal, min(event_time) AS t FROM {events} WHERE event_time < ? "
            "AND principal IN (SELECT principal FROM _ts_touched_principals) GROUP BY 1",
            params=[_utc(until)],
        ).to_arrow_table()
    return {str(r["principal"]): _utc(r["t"]) for r in table.to_pylist()}


def apply_done(finding: Finding, done: Done, history_days: float) -> Finding:
    """The finding with its effects, resources, counterparties, next steps and severity (scoring.policy)."""
    kinds = load_kinds()
    effects = [
        EffectEntry(
            kind=t.effect.kind,
            tactic=t.effect.tactic,
            technique=t.effect.technique,
            description=t.effect.description,
            succeeded=t.effect.succeeded,
            event_id=t.event_id,
            event_time=t.event_time,
        )
        for t in done.effects
    ]
    severity = finding_severity(
        finding.severity,
        [EffectSeverity(kind=e.kind, severity=kinds[e.kind].severity, succeeded=e.succeeded) for e in effects],
        history_days=history_days,
        gated=finding.gated,
    )
    explanation = list(finding.explanation)
    if effects:
        said = "; ".join(e.description for e in effects[:3]) + (
            f"; and {len(effects) - 3} more" if len(effects) > 3 else ""
        )
        explanation.insert(min(1, len(explanation)), f"What the calls did: {said}.")
    return replace(
        finding,
        severity=severity,
        severity_label=severity_label(severity),
        explanation=explanation,
        effects=effects,
        resources=[ResourceEntry(type=r.type, id=r.id, events=n) for r, n in done.resources],
        counterparties=[Counterparty(kind=p.kind, id=p.id, via=p.via) for p in done.counterparties],
        next_steps=next_steps([e.kind for e in effects], finding.tactic),
    )


def add_what_was_done(findings: Sequence[Finding], con: Any, events: str = "events") -> list[Finding]:
    """Each finding with what its calls did and touched, read from the view ``events`` of ``con``.

    ``events`` must hold the findings' events and the history before them (the detection run's
    lake view) — or, as the Spark engine gives it, the findings' events, the calls of the APIs of
    :func:`watched_names`, and one row per (account, principal) at its first time. Order and
    scores are kept; severity may only go up (:mod:`trailsight.scoring.policy`).
    """
    if not findings:
        return []
    start = min(f.first_seen for f in findings)
    end = max(f.last_seen for f in findings)
    calls = load_calls(con, events, [e for f in findings for e in f.event_ids], start, end)
    history = account_history(con, events, end + timedelta(microseconds=1))
    firsts = _first_calls(con, events, [f.principal for f in findings], end + timedelta(microseconds=1))
    out = []
    for f in findings:
        done = what_was_done([calls[e] for e in dict.fromkeys(f.event_ids) if e in calls], history)
        first = firsts.get(f.principal, f.first_seen)
        out.append(apply_done(f, done, (f.first_seen - first).total_seconds() / 86400.0))
    return out


__all__ = [
    "CALL_COLUMNS",
    "CallRow",
    "Done",
    "TimedEffect",
    "account_history",
    "add_what_was_done",
    "apply_done",
    "call_of",
    "load_calls",
    "watched_names",
    "what_was_done",
]
