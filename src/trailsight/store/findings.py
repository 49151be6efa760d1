"""Findings and analyst feedback in the state database (``S/state.duckdb``).

This module owns two tables::

    findings(id VARCHAR PRIMARY KEY, finding_type, principal, actor, account_id, tactic,
             severity DOUBLE, severity_label, confidence, risk_score INTEGER, score DOUBLE,
             first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, status, body JSON,
             created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ)
    feedback(finding_id VARCHAR, action VARCHAR, reason VARCHAR, at TIMESTAMPTZ)

``body`` is :meth:`Finding.to_dict`; the other columns are copies used to filter and sort.

Saving is an upsert by id. A finding already stored keeps the analyst's status: Dismissed
and Malicious always (a re-run that suppresses a dismissed finding by its own feedback rule
leaves it Dismissed; a confirmed Malicious one is never hidden), Acknowledged unless the new
one arrives Suppressed by a rule. An update to a stored
finding extends it: first/last seen widen and the event ids are merged.

DuckDB allows one writing process *or* several read-only ones, so the database is
opened read-write only for the length of a write, readers open it ``read_only=True``,
and both retry for a few seconds while another process holds the lock. Every query
is parameterised: CloudTrail values are attacker-controlled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import duckdb

from trailsight.errors import StoreError
from trailsight.finding import (
    STATUSES,
    ApiCall,
    Counterparty,
    EffectEntry,
    Evidence,
    Finding,
    NetworkInfo,
    Reason,
    ResourceEntry,
    StoryStep,
    TimelineEntry,
    UnusualAttribute,
)
from trailsight.store.layout import StoreLayout
from trailsight.store.state import table_exists, transaction

__all__ = [
    "ANALYST_STATUSES",
    "ORDERINGS",
    "FindingFilter",
    "StatePath",
    "connect_state",
    "count_findings",
    "ensure_tables",
    "feedback_for",
    "finding_facets",
    "finding_from_dict",
    "findings_per_day",
    "findings_touching",
    "get_finding",
    "list_findings",
    "save_findings",
    "set_status",
    "state_path",
]

StatePath = str | Path | StoreLayout
"""A store folder, a :class:`StoreLayout`, or the ``state.duckdb`` file itself."""


class FindingFilter(TypedDict, total=False):
    """The filters of :func:`list_findings`, :func:`count_findings` and :func:`findings_per_day`."""

    since: datetime | None
    until: datetime | None
    severity: str | Sequence[str] | None
    tactic: str | Sequence[str] | None
    principal: str | None
    account: str | None
    status: str | Sequence[str] | None
    confidence: str | Sequence[str] | None


ANALYST_STATUSES = ("Acknowledged", "Dismissed", "Malicious")
"""Statuses only an analyst sets; a re-run of detection keeps them."""

ORDERINGS: dict[str, str] = {
    # Attack stories first: each holds findings that would otherwise be read apart.
    "risk": "(finding_type LIKE 'AttackSequence:%') DESC, risk_score DESC, score DESC, last_seen DESC, id",
    "severity": "severity DESC, risk_score DESC, last_seen DESC, id",
    "score": "score DESC, last_seen DESC, id",
    "time": "last_seen DESC, id",
    "last_seen": "last_seen DESC, id",
    "first_seen": "first_seen ASC, id",
    "oldest": "first_seen ASC, id",
}
"""``order_by`` names and the SQL they stand for (a whitelist: never user text in SQL)."""

_LOCK_WAIT_S = 10.0

_DDL = (
    """CREATE TABLE IF NOT EXISTS findings(
        id VARCHAR PRIMARY KEY,
        finding_type VARCHAR,
        principal VARCHAR,
        actor VARCHAR,
        account_id VARCHAR,
        tactic VARCHAR,
        severity DOUBLE,
        severity_label VARCHAR,
        confidence VARCHAR,
        risk_score INTEGER,
        score DOUBLE,
        first_seen TIMESTAMPTZ,
        last_seen TIMESTAMPTZ,
        status VARCHAR,
        body JSON,
        created_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS feedback(
        finding_id VARCHAR,
        action VARCHAR,
        reason VARCHAR,
        "at" TIMESTAMPTZ)""",
)


def state_path(path: StatePath) -> Path:
    """Return the state database file for a store folder, layout or database path."""
    if isinstance(path, StoreLayout):
        return path.state
    p = Path(path)
    if p.suffix == ".duckdb" or p.is_file():
        return p
    return StoreLayout(p).state


@contextmanager
def connect_state(path: StatePath, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the state database, waiting up to 10 s while another process holds its lock.

    A read-only open of a store that has no state database yet raises :class:`StoreError`.
    """
    db = state_path(path)
    if read_only and not db.is_file():
        raise StoreError(f"{db}: no state database (run `trailsight ingest` and `trailsight detect` first)")
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _LOCK_WAIT_S
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(db), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise StoreError(f"{db}: cannot open the state database: {_first_line(exc)}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise StoreError(f"{db}: cannot open the state database: {_first_line(exc)}") from None
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``findings`` and ``feedback`` tables if they are missing."""
    for ddl in _DDL:
        con.execute(ddl)


@contextmanager
def _writer(con_or_path: duckdb.DuckDBPyConnection | StatePath) -> Iterator[duckdb.DuckDBPyConnection]:
    if isinstance(con_or_path, duckdb.DuckDBPyConnection):
        ensure_tables(con_or_path)
        yield con_or_path
        return
    with connect_state(con_or_path, read_only=False) as con:
        ensure_tables(con)
        yield con


@contextmanager
def _reader(con_or_path: duckdb.DuckDBPyConnection | StatePath) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A read-only connection, or None when the findings table does not exist yet."""
    if isinstance(con_or_path, duckdb.DuckDBPyConnection):
        yield con_or_path if table_exists(con_or_path, "findings") else None
        return
    with connect_state(con_or_path, read_only=True) as con:
        yield con if table_exists(con, "findings") else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_epoch_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- writing


def save_findings(
    con_or_path: duckdb.DuckDBPyConnection | StatePath, findings: Iterable[Finding | dict[str, Any]]
) -> int:
    """Upsert findings by id; return how many were written (new or updated).

    An existing finding keeps its analyst status (Dismissed and Malicious always, Acknowledged
    unless the new one is Suppressed); its time range widens to cover both versions and its
    event ids are merged.
    """
    items = [f.to_dict() if isinstance(f, Finding) else dict(f) for f in findings]
    if not items:
        return 0
    now = _now()
    written = 0
    with _writer(con_or_path) as con, transaction(con):
        for body in items:
            _upsert(con, body, now)
            written += 1
    return written


def _upsert(con: duckdb.DuckDBPyConnection, body: dict[str, Any], now: datetime) -> None:
    fid = str(body["id"])
    row = con.execute("SELECT status, body FROM findings WHERE id = ?", [fid]).fetchone()
    new_status = str(body.get("status") or "Open")
    if new_status not in STATUSES:
        raise StoreError(f"finding {fid}: unknown status {new_status!r}")
    first_seen = _parse_time(body["first_seen"])
    last_seen = _parse_time(body["last_seen"])
    if row is not None:
        old_status, old_body_text = str(row[0]), row[1]
        old_body: dict[str, Any] = json.loads(old_body_text) if old_body_text else {}
        # An analyst's verdict (Dismissed, Malicious) is final; an acknowledgement gives way to a rule.
        if old_status in ("Dismissed", "Malicious") or (old_status == "Acknowledged" and new_status != "Suppressed"):
            new_status = old_status
        if old_body:
            first_seen = min(first_seen, _parse_time(old_body["first_seen"]))
            last_seen = max(last_seen, _parse_time(old_body["last_seen"]))
            # A finding's own (unusual) events are its first ``count`` ids, its session's other
            # calls the rest (findings/session.py): each part is merged on its own.
            old_ids, new_ids = list(old_body.get("event_ids", [])), list(body.get("event_ids", []))
            old_n, new_n = int(old_body.get("count") or len(old_ids)), int(body.get("count") or len(new_ids))
            own = list(dict.fromkeys([*old_ids[:old_n], *new_ids[:new_n]]))
            rest = [e for e in dict.fromkeys([*old_ids[old_n:], *new_ids[new_n:]]) if e not in set(own)]
            body = {**body, "event_ids": own + rest, "count": max(new_n, len(own))}
    body = {**body, "status": new_status, "first_seen": _iso(first_seen), "last_seen": _iso(last_seen)}
    params = [
        fid,
        body.get("finding_type"),
        body.get("principal"),
        body.get("actor"),
        body.get("account_id"),
        body.get("tactic"),
        float(body.get("severity") or 0.0),
        body.get("severity_label"),
        body.get("confidence"),
        int(body.get("risk_score") or 0),
        float(body.get("score") or 0.0),
        first_seen,
        last_seen,
        new_status,
        json.dumps(body, ensure_ascii=False),
        now,
    ]
    if row is None:
        con.execute("INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [*params, now])
    else:
        con.execute(
            "UPDATE findings SET finding_type = ?, principal = ?, actor = ?, account_id = ?, tactic = ?, severity = ?,"
            " severity_label = ?, confidence = ?, risk_score = ?, score = ?, first_seen = ?, last_seen = ?, status = ?,"
            " body = ?, updated_at = ? WHERE id = ?",
            [*params[1:], fid],
        )


def set_status(path: duckdb.DuckDBPyConnection | StatePath, finding_id: str, status: str, reason: str) -> None:
    """Set a finding's status (analyst triage) and record the feedback with its reason.

    ``status`` is one of Open, Acknowledged, Dismissed, Malicious (Suppressed is set only
    by rules). Raises :class:`StoreError` when the finding is not stored.
    """
    canonical = {s.lower(): s for s in STATUSES}.get(status.strip().lower())
    if canonical is None or canonical == "Suppressed":
        raise StoreError(f"status {status!r}: must be one of Open, Acknowledged, Dismissed, Malicious")
    now = _now()
    with _writer(path) as con:
        row = con.execute("SELECT body FROM findings WHERE id = ?", [finding_id]).fetchone()
        if row is None:
            raise StoreError(f"finding {finding_id!r}: not in {_describe_target(path)}")
        body = json.loads(row[0])
        body["status"] = canonical
        with transaction(con):
            con.execute(
                "UPDATE findings SET status = ?, body = ?, updated_at = ? WHERE id = ?",
                [canonical, json.dumps(body, ensure_ascii=False), now, finding_id],
            )
            con.execute("INSERT INTO feedback VALUES (?, ?, ?, ?)", [finding_id, canonical, reason, now])


def _describe_target(path: duckdb.DuckDBPyConnection | StatePath) -> str:
    if isinstance(path, duckdb.DuckDBPyConnection):
        return "the state database"
    return str(state_path(path))


# --------------------------------------------------------------------------- reading


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value if str(v).strip()]


def _where(**filters: Unpack[FindingFilter]) -> tuple[str, list[Any]]:
    since, until = filters.get("since"), filters.get("until")
    tactic, principal, account = filters.get("tactic"), filters.get("principal"), filters.get("account")
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("last_seen >= ?")
        params.append(since)
    if until is not None:
        clauses.append("first_seen < ?")
        params.append(until)
    for column, value in (
        ("severity_label", filters.get("severity")),
        ("status", filters.get("status")),
        ("confidence", filters.get("confidence")),
    ):
        values = [v.lower() for v in _as_list(value)]
        if values:
            clauses.append(f"lower({column}) IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    tactics = [v.lower() for v in _as_list(tactic)]
    if tactics:
        # "none" selects the findings without a tactic (typed Unusual:...).
        parts = [f"lower(tactic) IN ({', '.join('?' for _ in tactics)})"]
        if "none" in tactics or "unusual" in tactics:
            parts.append("tactic IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
        params.extend(tactics)
    if principal:
        # Full ARN, actor, or the last path segment (a user or role name).
        clauses.append("(principal = ? OR actor = ? OR ends_with(principal, ?) OR ends_with(actor, ?))")
        params.extend([principal, principal, "/" + principal, "/" + principal])
    if account:
        clauses.append("account_id = ?")
        params.append(account)
    sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return sql, params


def list_findings(
    path: duckdb.DuckDBPyConnection | StatePath,
    *,
    order_by: str = "risk",
    limit: int | None = 50,
    offset: int = 0,
    **filters: Unpack[FindingFilter],
) -> list[dict[str, Any]]:
    """Return stored findings (their ``to_dict`` form, with the current status) matching the filters.

    Filters combine with AND; a filter given as a list or comma-separated string matches any of
    its values (case-insensitive). ``since``/``until`` select findings overlapping ``[since, until)``.
    ``principal`` matches the principal or actor ARN, or its last path segment (``alice``).
    ``order_by`` is one of :data:`ORDERINGS`. ``limit=None`` returns all.
    """
    if order_by not in ORDERINGS:
        raise StoreError(f"order_by {order_by!r}: must be one of {', '.join(ORDERINGS)}")
    where, params = _where(**filters)
    sql = f"SELECT status, body FROM findings{where} ORDER BY {ORDERINGS[order_by]}"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params.extend([max(0, int(limit)), max(0, int(offset))])
    elif offset:
        sql += " OFFSET ?"
        params.append(max(0, int(offset)))
    with _reader(path) as con:
        if con is None:
            return []
        rows = con.execute(sql, params).fetchall()
    return [_body(status, text) for status, text in rows]


def count_findings(path: duckdb.DuckDBPyConnection | StatePath, **filters: Unpack[FindingFilter]) -> int:
    """Return how many stored findings match the filters (same filters as :func:`list_findings`)."""
    where, params = _where(**filters)
    with _reader(path) as con:
        if con is None:
            return 0
        row = con.execute(f"SELECT count(*) FROM findings{where}", params).fetchone()
    return int(row[0]) if row else 0


def findings_per_day(
    path: duckdb.DuckDBPyConnection | StatePath, **filters: Unpack[FindingFilter]
) -> list[tuple[date, int]]:
    """(UTC day, findings first seen that day) of the findings matching the filters of :func:`list_findings`."""
    where, params = _where(**filters)
    with _reader(path) as con:
        if con is None:
            return []
        rows = con.execute(
            f"SELECT CAST(timezone('UTC', first_seen) AS DATE) AS d, count(*) FROM findings{where}"
            " GROUP BY d ORDER BY d",
            params,
        ).fetchall()
    return [(r[0], int(r[1])) for r in rows]


def finding_facets(path: duckdb.DuckDBPyConnection | StatePath) -> dict[str, list[str]]:
    """Distinct tactics and accounts among stored findings (for filter menus), at most 200 of each."""
    result: dict[str, list[str]] = {"tactic": [], "account": []}
    with _reader(path) as con:
        if con is None:
            return result
        for column, key in (("tactic", "tactic"), ("account_id", "account")):
            rows = con.execute(
                f"SELECT DISTINCT {column} FROM findings WHERE {column} IS NOT NULL ORDER BY 1 LIMIT 200"
            ).fetchall()
            result[key] = [str(r[0]) for r in rows]
    return result


def findings_touching(
    path: duckdb.DuckDBPyConnection | StatePath,
    *,
    ip: str | None = None,
    asn: int | None = None,
    key: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Findings whose network list holds ``ip`` / ``asn`` or whose access keys hold ``key`` (newest first)."""
    if ip is not None:
        cond, param = "list_contains(json_extract_string(body, '$.networks[*].ip'), ?)", ip
    elif asn is not None:
        cond, param = "list_contains(json_extract_string(body, '$.networks[*].asn'), ?)", str(asn)
    elif key is not None:
        cond, param = "list_contains(json_extract_string(body, '$.access_keys[*]'), ?)", key
    else:
        return []
    with _reader(path) as con:
        if con is None:
            return []
        rows = con.execute(
            "SELECT status, body FROM findings WHERE " + cond + " ORDER BY last_seen DESC, id LIMIT ?",
            [param, limit],
        ).fetchall()
    out = []
    for status, text in rows:
        body: dict[str, Any] = json.loads(text)
        body["status"] = status
        out.append(body)
    return out


def get_finding(path: duckdb.DuckDBPyConnection | StatePath, finding_id: str) -> dict[str, Any] | None:
    """Return one stored finding by id (or by a unique id prefix of 6+ characters), or None."""
    with _reader(path) as con:
        if con is None:
            return None
        row = con.execute("SELECT status, body FROM findings WHERE id = ?", [finding_id]).fetchone()
        if row is None and len(finding_id) >= 6:
            rows = con.execute(
                "SELECT status, body FROM findings WHERE starts_with(id, ?) LIMIT 2", [finding_id]
            ).fetchall()
            row = rows[0] if len(rows) == 1 else None
    return _body(row[0], row[1]) if row else None


def feedback_for(
    path: duckdb.DuckDBPyConnection | StatePath,
    finding_id: str | None = None,
    *,
    action: str | Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Return feedback rows (``finding_id, action, reason, at``), oldest first.

    ``finding_id`` limits them to one finding; ``action`` to some actions (statuses, e.g. Dismissed).
    """
    clauses: list[str] = []
    params: list[Any] = []
    if finding_id is not None:
        clauses.append("finding_id = ?")
        params.append(finding_id)
    actions = [a.lower() for a in _as_list(action)]
    if actions:
        clauses.append(f"lower(action) IN ({', '.join('?' for _ in actions)})")
        params.extend(actions)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    with _reader(path) as con:
        if con is None or not table_exists(con, "feedback"):
            return []
        rows = con.execute(
            f'SELECT finding_id, action, reason, epoch_us("at") FROM feedback{where} ORDER BY "at", finding_id', params
        )
        result = rows.fetchall()
    return [{"finding_id": r[0], "action": r[1], "reason": r[2], "at": _iso(_from_epoch_us(r[3]))} for r in result]


def _body(status: str, text: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(text)
    body["status"] = status
    return body


# --------------------------------------------------------------------------- JSON -> Finding


def finding_from_dict(data: dict[str, Any]) -> Finding:
    """Rebuild a :class:`Finding` from its ``to_dict`` form (as stored or written to JSON lines)."""
    return Finding(
        id=str(data["id"]),
        finding_type=str(data.get("finding_type") or ""),
        title=str(data.get("title") or ""),
        principal=str(data.get("principal") or ""),
        actor=str(data.get("actor") or data.get("principal") or ""),
        account_id=str(data.get("account_id") or ""),
        identity_type=str(data.get("identity_type") or "Unknown"),
        first_seen=_parse_time(data["first_seen"]),
        last_seen=_parse_time(data["last_seen"]),
        count=int(data.get("count") or 0),
        score=float(data.get("score") or 0.0),
        risk_score=int(data.get("risk_score") or 0),
        severity=float(data.get("severity") or 0.0),
        severity_label=str(data.get("severity_label") or "Low"),
        confidence=str(data.get("confidence") or "Low"),
        tactic=data.get("tactic"),
        tactic_id=data.get("tactic_id"),
        technique=data.get("technique"),
        event_ids=[str(e) for e in data.get("event_ids") or []],
        reasons=[Reason(**r) for r in data.get("reasons") or []],
        anomalous_apis=[ApiCall(**a) for a in data.get("anomalous_apis") or []],
        unusual=[
            UnusualAttribute(
                **{
                    **u,
                    "principal_usual": [Evidence(**e) for e in u.get("principal_usual") or []],
                    "account_usual": [Evidence(**e) for e in u.get("account_usual") or []],
                }
            )
            for u in data.get("unusual") or []
        ],
        usual_apis_principal=[Evidence(**e) for e in data.get("usual_apis_principal") or []],
        usual_apis_account=[Evidence(**e) for e in data.get("usual_apis_account") or []],
        networks=[NetworkInfo(**n) for n in data.get("networks") or []],
        user_agents=[str(u) for u in data.get("user_agents") or []],
        access_keys=[str(k) for k in data.get("access_keys") or []],
        session_names=[str(s) for s in data.get("session_names") or []],
        explanation=[str(s) for s in data.get("explanation") or []],
        timeline=[
            TimelineEntry(**{**t, "event_time": _parse_time(t["event_time"])}) for t in data.get("timeline") or []
        ],
        detectors={str(k): float(v) for k, v in (data.get("detectors") or {}).items()},
        effects=[EffectEntry(**{**e, "event_time": _parse_time(e["event_time"])}) for e in data.get("effects") or []],
        resources=[ResourceEntry(**r) for r in data.get("resources") or []],
        counterparties=[Counterparty(**c) for c in data.get("counterparties") or []],
        next_steps=[str(s) for s in data.get("next_steps") or []],
        status=str(data.get("status") or "Open"),
        gated=bool(data.get("gated", False)),
        story_id=data.get("story_id"),
        steps=[StoryStep(**{**st, "time": _parse_time(st["time"])}) for st in data.get("steps") or []],
        principals=[str(p) for p in data.get("principals") or []],
        members=[str(m) for m in data.get("members") or []],
    )
