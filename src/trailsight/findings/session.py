"""Everything the session did: a raised finding carries the other calls of its own session in its burst.

A finding is made of the events that scored as unusual; the calls around them by the same
credential are not unusual one by one (the hundredth ``PutObject`` of a ransomware run scores
like the second), yet an analyst reading the finding wants all of them: what this session did.

Algorithm, in plain words: a finding's *session* is its actor with one of the access keys its
unusual events used (a temporary key is one role session, a long-term key one user's key); a
finding whose events carry no key (a console sign-in) has its actor on its own source addresses
instead. The session's calls from ``gap`` before the finding's first event to ``gap`` after its
last (``[scoring] gap_minutes``, what already joins unusual events into one finding) are added
to its ``event_ids`` after the unusual ones, up to :data:`MAX_SESSION_EVENTS`. Its count, score,
APIs and explanation stay those of the unusual events. One query serves all findings; the
table of wanted sessions (:func:`sessions_wanted`) and the rule that matches a call to one
(:data:`SESSION_MATCH`) are shared with the Spark engine reading raw CloudTrail, which runs the
same join on Spark so that only the sessions' calls reach the driver's view.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from trailsight.finding import Finding
from trailsight.store.state import plain_relation, raw_connection

__all__ = ["MAX_SESSION_EVENTS", "SESSION_MATCH", "add_session_calls", "sessions_wanted"]

#: Calls of a session kept beside a finding's unusual events (the earliest ones).
MAX_SESSION_EVENTS: Final = 5000


#: When a call ``e`` belongs to a wanted session ``w`` (a row of :func:`sessions_wanted`), in SQL
#: that DuckDB and Spark both read.
SESSION_MATCH: Final = (
    "e.actor = w.actor AND e.event_time >= w.lo AND e.event_time <= w.hi "
    "AND (e.access_key_id = w.key OR (w.key IS NULL AND e.source_ip = w.ip))"
)


def sessions_wanted(findings: Sequence[Finding], gap: timedelta) -> pa.Table | None:
    """The sessions whose calls ``findings`` want, one row per (finding, key or address); None when none.

    Columns: ``n`` (the finding's index), ``actor``, ``key`` (an access key, or null), ``ip`` (the
    source address of a finding without a key, else null), ``lo`` and ``hi`` (the finding's first
    and last event, ``gap`` either side, UTC). A call is the session's when its actor is ``actor``,
    its time within ``[lo, hi]`` and its key ``key`` (or, when ``key`` is null, its address ``ip``):
    :func:`add_session_calls` joins the view on it in DuckDB, the Spark engine on Spark to bring
    only those calls to the driver (:mod:`trailsight.engines.spark`).
    """
    rows: dict[str, list[Any]] = {"n": [], "actor": [], "key": [], "ip": [], "lo": [], "hi": []}
    for n, f in enumerate(findings):
        lo, hi = f.first_seen - gap, f.last_seen + gap
        sessions: list[tuple[str | None, str | None]] = [(k, None) for k in f.access_keys]
        sessions = sessions or [(None, x.ip) for x in f.networks]
        for key, ip in sessions:
            for name, value in (("n", n), ("actor", f.actor or f.principal), ("key", key), ("ip", ip)):
                rows[name].append(value)
            rows["lo"].append(lo.astimezone(UTC))
            rows["hi"].append(hi.astimezone(UTC))
    if not rows["n"]:
        return None
    return pa.table(
        {
            "n": pa.array(rows["n"], pa.int64()),
            "actor": pa.array(rows["actor"], pa.string()),
            "key": pa.array(rows["key"], pa.string()),
            "ip": pa.array(rows["ip"], pa.string()),
            "lo": pa.array(rows["lo"], pa.timestamp("us", tz="UTC")),
            "hi": pa.array(rows["hi"], pa.timestamp("us", tz="UTC")),
        }
    )


def add_session_calls(findings: Sequence[Finding], con: Any, events: str, gap: timedelta) -> list[Finding]:
    """``findings`` with the other calls of each one's session within ``gap`` of it added to ``event_ids``.

    ``events`` is a view of ``con`` holding the findings' range (the run's calls view, with the
    columns ``actor``, ``access_key_id`` and ``source_ip``).
    """
    if not findings:
        return []
    plain_relation(events, "session calls")
    wanted = sessions_wanted(findings, gap)
    if wanted is None:
        return list(findings)
    db = raw_connection(con)
    since: datetime = pc.min(wanted["lo"]).as_py()
    until: datetime = pc.max(wanted["hi"]).as_py()
    db.register("_ts_session_wanted", wanted)
    try:
        found = db.execute(
            "SELECT DISTINCT w.n, e.event_id, epoch_us(e.event_time) AS t FROM "
            f"(SELECT event_id, event_time, actor, access_key_id, source_ip FROM {events} "
            " WHERE event_time >= ? AND event_time <= ?) e "
            f"JOIN _ts_session_wanted w ON {SESSION_MATCH} "
            "ORDER BY w.n, t, e.event_id",
            [since, until],
        ).fetchall()
    finally:
        db.unregister("_ts_session_wanted")
    calls: dict[int, list[str]] = defaultdict(list)
    for n, event_id, _ in found:
        calls[int(n)].append(str(event_id))
    out = []
    for n, f in enumerate(findings):
        own = set(f.event_ids)
        extra = [e for e in calls.get(n, []) if e not in own][:MAX_SESSION_EVENTS]
        out.append(replace(f, event_ids=[*f.event_ids, *extra]) if extra else f)
    return out
