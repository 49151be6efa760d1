"""What a made identity did next: the calls of a key, user or session that a lineage link handed out.

A story's lineage links name what the caller made (a key, a user, a role session); when that
identity then acts without anything unusual enough to be a signal of its own (a fresh user has no
history to be unusual against), its calls are still part of the story. :func:`follow_ups` reads
them from the lake, for the links whose caller is a raised finding's actor, one query for all, and
returns one *use* unit per link that was used: its calls, networks and keys, as a finding-shaped
record the correlation joins like any other unit (it never counts as a signal or a finding).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import duckdb

from trailsight.finding import Finding, NetworkInfo
from trailsight.store import lake
from trailsight.store.layout import StoreLayout
from trailsight.store.lineage import Link

__all__ = ["MAX_EVENTS", "follow_ups"]

#: Calls of one made identity kept as evidence (the first ones).
MAX_EVENTS: Final = 200


def _match(link: Link) -> tuple[str, str] | None:
    """How the made identity shows in its events: ("key", id), ("user", "account:name") or ("actor", arn)."""
    if link.child_key:
        return "key", link.child_key
    if link.child and link.child.startswith("user:"):
        return "user", link.child.split(":", 1)[1]
    if link.link == "assume_role" and link.child:
        return "actor", link.child
    return None


def follow_ups(layout: StoreLayout, links: Sequence[Link], until: datetime) -> list[Finding]:
    """One *use* unit per link in ``links`` whose made identity acted before ``until`` (one lake query)."""
    wanted = [(x, m) for x in links if x.link != "trust" and (m := _match(x)) is not None]
    if not wanted:
        return []
    since = min(x.event_time for x, _ in wanted)
    keys = sorted({v for x, (k, v) in wanted if k == "key"})
    users = sorted({v for x, (k, v) in wanted if k == "user"})
    actors = sorted({v for x, (k, v) in wanted if k == "actor"})
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        lake.open_events(con, layout, since, until).create_view("lake_range")
        user_of = "account_id || ':' || regexp_extract(principal, ':user/(?:.*/)?([^/]+)$', 1)"
        fetched = con.execute(
            "SELECT event_id, epoch_us(event_time) AS t, account_id, principal, actor, identity_type, event_name, "
            f"source_ip, ip_kind, asn, as_org, city, country, access_key_id, {user_of} AS user_key FROM lake_range "
            "WHERE access_key_id IN (SELECT unnest(?::VARCHAR[])) OR actor IN (SELECT unnest(?::VARCHAR[])) "
            f"OR (principal LIKE '%:user/%' AND {user_of} IN (SELECT unnest(?::VARCHAR[]))) ORDER BY t, event_id",
            [keys, actors, users],
        ).fetchall()
    finally:
        con.close()
    out: list[Finding] = []
    seen: set[tuple[str, int]] = set()
    for link, (kind, value) in wanted:
        t0 = link.event_time.timestamp() * 1_000_000
        column = {"key": 13, "actor": 4, "user": 14}[kind]
        mine = [r for r in fetched if r[column] == value and r[1] >= t0 and r[0] != link.event_id][:MAX_EVENTS]
        # A user made, given a password and a key by three calls acted once: one unit, not three.
        if mine and (mine[0][0], len(mine)) not in seen:
            seen.add((mine[0][0], len(mine)))
            out.append(_unit(link, mine))
    return out


def _unit(link: Link, rows: list[tuple[Any, ...]]) -> Finding:
    first = rows[0]
    times = [datetime.fromtimestamp(r[1] / 1_000_000, tz=UTC) for r in rows]
    principal, actor = str(first[3]), str(first[4])
    apis = list(dict.fromkeys(str(r[6]) for r in rows))
    nets: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in rows:
        if r[7]:
            nets[str(r[7])].append(r)
    networks = [
        NetworkInfo(
            ip=ip, ip_kind=rs[0][8], asn=rs[0][9], as_org=rs[0][10], city=rs[0][11], country=rs[0][12], events=len(rs)
        )
        for ip, rs in sorted(nets.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    shown = ", ".join(apis[:4]) + (f" and {len(apis) - 4} more" if len(apis) > 4 else "")
    return Finding(
        id=f"use-{link.event_id}-{link.link}",
        finding_type="Use",
        title=f"{principal.rsplit('/', 1)[-1]}: {len(rows)} call(s): {shown}",
        principal=principal,
        actor=actor,
        account_id=str(first[2]),
        identity_type=str(first[5] or "Unknown"),
        first_seen=times[0],
        last_seen=times[-1],
        count=len(rows),
        score=0.0,
        risk_score=0,
        severity=0.0,
        severity_label="Low",
        confidence="Low",
        tactic=None,
        tactic_id=None,
        technique=None,
        event_ids=[str(r[0]) for r in rows],
        reasons=[],
        networks=networks,
        access_keys=list(dict.fromkeys(str(r[13]) for r in rows if r[13])),
    )
