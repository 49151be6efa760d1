"""What a made identity did next: the calls of a key, user or session that a lineage link handed out.

A story's lineage links name what the caller made (a key, a user, a role session); when that
identity then acts without anything unusual enough to be a signal of its own (a fresh user has no
history to be unusual against), its calls are still part of the story. :func:`follow_ups` reads
them from the lake, for the links whose caller is a raised finding's actor, one query for all, and
returns one *use* unit per link that was used: its calls, networks and keys, as a finding-shaped
record the correlation joins like any other unit (it never counts as a signal or a finding).
:func:`address_uses` does the same for an address where a machine role's credentials were used
outside their resource: what other actors did from there in the same burst.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import duckdb

from trailsight.finding import Finding, NetworkInfo
from trailsight.store import lake
from trailsight.store.layout import StoreLayout
from trailsight.store.lineage import Link

__all__ = ["ADDRESS_USE", "MAX_EVENTS", "address_uses", "follow_ups"]

#: Calls of one made identity kept as evidence (the first ones).
MAX_EVENTS: Final = 200

#: The finding type of what others did from an address where machine credentials were used.
ADDRESS_USE: Final = "Use/Address"


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
    wanted = [(x, m) for x in links if x.link not in ("trust", "outside_use") and (m := _match(x)) is not None]
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


def address_uses(layout: StoreLayout, links: Sequence[Link], gap: timedelta, max_actors: int) -> list[Finding]:
    """What others did from the addresses where machine credentials were used outside their resource.

    For each ``outside_use`` link, the calls of every other actor from its address within
    ``gap`` of it (the burst), one *use* unit per actor, when at most ``max_actors`` actors
    called from there in that time (more: a shared egress, not the intruder's address).
    """
    wanted = [x for x in links if x.link == "outside_use" and x.source_ip]
    if not wanted:
        return []
    since = min(x.event_time for x in wanted) - gap
    until = max(x.event_time for x in wanted) + gap
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        lake.open_events(con, layout, since, until).create_view("lake_range")
        fetched = con.execute(
            "SELECT event_id, epoch_us(event_time) AS t, account_id, principal, actor, identity_type, event_name, "
            "source_ip, ip_kind, asn, as_org, city, country, access_key_id FROM lake_range "
            "WHERE source_ip IN (SELECT unnest(?::VARCHAR[])) ORDER BY t, event_id",
            [sorted({str(x.source_ip) for x in wanted})],
        ).fetchall()
    finally:
        con.close()
    out: list[Finding] = []
    seen: set[str] = set()
    span = gap.total_seconds() * 1_000_000
    for link in wanted:
        t0 = link.event_time.timestamp() * 1_000_000
        near = [r for r in fetched if r[7] == link.source_ip and abs(r[1] - t0) <= span]
        by_actor: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for r in near:
            by_actor[str(r[4])].append(r)
        if len(by_actor) > max_actors:
            continue
        for actor, rows in sorted(by_actor.items()):
            if actor == link.child or rows[0][0] in seen:
                continue
            seen.add(rows[0][0])
            out.append(_unit(link, rows[:MAX_EVENTS], f"use-{rows[0][0]}-address", ADDRESS_USE))
    return out


def _unit(link: Link, rows: list[tuple[Any, ...]], unit_id: str | None = None, kind: str = "Use") -> Finding:
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
        id=unit_id or f"use-{link.event_id}-{link.link}",
        finding_type=kind,
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
