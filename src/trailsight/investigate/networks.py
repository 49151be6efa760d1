"""A principal's usual networks, by class: "usual networks: home broadband (Deutsche Telekom), office egress".

The classes are the ``net_class`` enrichment column (:mod:`trailsight.enrich.netclass`), except
that a network (``net_prefix``, /24 or /48) that ``EGRESS_PRINCIPALS`` (5) principals of the
account called from is the organisation's egress (``egress``, as the detectors learn it). A class
is *usual* when the principal called from it on at least ``USUAL_SHARE`` of its active days (and
on two days at least); each usual class names its busiest organisations. A lake written before
the column existed has no classes, and the line says so.
"""

from __future__ import annotations

from typing import Any

import duckdb

from trailsight.enrich.netclass import EGRESS_PRINCIPALS, label

#: Share of the principal's active days a class needs to count as usual.
USUAL_SHARE = 0.1

#: Classes that are the AWS plumbing rather than a network a person calls from.
_PLUMBING = ("aws-service", "internal", "unknown")


def usual_networks(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> dict[str, Any]:
    """The classes of the events matching ``where``, and the profile line.

    ``{"classes": [{net_class, label, days, events, share, orgs, usual}], "line": str}``.
    """
    total = con.execute(f"SELECT count(DISTINCT event_date) FROM events WHERE {where}", params).fetchone()
    active_days = int(total[0]) if total and total[0] else 0
    egress = (
        "SELECT account_id, net_prefix FROM events WHERE net_prefix IS NOT NULL AND account_id IN "
        f"(SELECT DISTINCT account_id FROM events WHERE {where}) "
        "GROUP BY account_id, net_prefix HAVING count(DISTINCT principal) >= ?"
    )
    rows = con.execute(
        "SELECT CASE WHEN g.net_prefix IS NULL THEN e.net_class ELSE 'egress' END AS cls, "
        "count(DISTINCT e.event_date) AS days, count(*) AS events, "
        "list(e.as_org ORDER BY e.as_org) FILTER (WHERE e.as_org IS NOT NULL) AS orgs "
        f"FROM (SELECT * FROM events WHERE {where}) e LEFT JOIN ({egress}) g "
        "ON e.account_id = g.account_id AND e.net_prefix = g.net_prefix "
        f"WHERE e.net_class IS NOT NULL AND e.net_class NOT IN ({', '.join('?' for _ in _PLUMBING)}) "
        "GROUP BY cls ORDER BY days DESC, events DESC, cls",
        [*params, *params, EGRESS_PRINCIPALS, *_PLUMBING],
    ).fetchall()
    classes: list[dict[str, Any]] = []
    for cls, days, events, orgs in rows:
        counts: dict[str, int] = {}
        for org in orgs or []:
            counts[org] = counts.get(org, 0) + 1
        top = [o for o, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]]
        share = days / active_days if active_days else 0.0
        classes.append(
            {
                "net_class": cls,
                "label": label(cls),
                "days": int(days),
                "events": int(events),
                "share": round(share, 3),
                "orgs": top,
                "usual": days >= 2 and share >= USUAL_SHARE,
            }
        )
    return {"classes": classes, "line": network_line(classes)}


def network_line(classes: list[dict[str, Any]]) -> str:
    """The profile line from :func:`usual_networks`' classes."""
    usual = [c for c in classes if c["usual"]]
    if not classes:
        return "usual networks: not known (no network classes in the lake)"
    if not usual:
        return "usual networks: none yet (no class on 10% of its days)"
    words = [f"{c['label']} ({', '.join(_short(o) for o in c['orgs'])})" if c["orgs"] else c["label"] for c in usual]
    return "usual networks: " + ", ".join(words)


def _short(org: str) -> str:
    """An organisation name without its legal suffix ("Deutsche Telekom AG" → "Deutsche Telekom")."""
    words = org.replace(",", " ").split()
    while len(words) > 1 and words[-1].rstrip(".").lower() in _SUFFIXES:
        words.pop()
    return " ".join(words)


_SUFFIXES = frozenset(
    {"ag", "gmbh", "llc", "inc", "ltd", "limited", "plc", "sa", "s.a", "sas", "srl", "b.v", "bv", "corp", "co"}
)
