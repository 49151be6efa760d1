"""The lineage of an access key: who made it and through whom, and what its holder made in turn.

Reads the links ``detect`` stored (:mod:`trailsight.store.lineage`); a store no run has seen yet
is read from its lake instead. Upstream walks from the key to the identity that handed it out,
then to whoever made *that* identity (a role chain, across accounts, back to a user and the key
it used); downstream follows the keys, users and sessions the key's holder made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trailsight.features.source import lake_day_range
from trailsight.store import lineage
from trailsight.store.findings import connect_state
from trailsight.store.layout import StoreLayout

__all__ = ["key_lineage"]

_MAX_DEPTH = 8


def _links(layout: StoreLayout) -> list[lineage.Link]:
    stored: list[lineage.Link] = []
    if layout.state.is_file():
        with connect_state(layout, read_only=True) as con:
            stored = lineage.stored_links(con)
    if stored:
        return stored
    days = lake_day_range(layout)
    if days is None:
        return []
    since = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    until = datetime(days[1].year, days[1].month, days[1].day, tzinfo=UTC) + timedelta(days=1)
    return lineage.links_from_lake(layout, since, until)


def _made_by(links: Sequence[lineage.Link], actor: str, key: str | None) -> lineage.Link | None:
    """The link that made ``actor`` (a session or a user) or handed out ``key``."""
    user = None
    if ":user/" in actor:
        parts = actor.split(":")
        user = lineage.user_node(parts[4], actor) if len(parts) > 4 else None
    for x in links:
        if (key and x.child_key == key) or x.child == actor or (user and x.child == user):
            return x
    return None


def key_lineage(store: Path | str | StoreLayout, key: str) -> dict[str, Any]:
    """``{"upstream": [...], "downstream": [...]}``: the links above and below access key ``key``."""
    layout = store if isinstance(store, StoreLayout) else StoreLayout(Path(store))
    links = _links(layout)
    upstream: list[dict[str, Any]] = []
    seen: set[str] = set()
    current = next((x for x in links if x.child_key == key), None)
    while current is not None and current.event_id not in seen and len(upstream) < _MAX_DEPTH:
        seen.add(current.event_id)
        upstream.append(current.to_dict())
        current = _made_by(links, current.parent, current.parent_key)
    downstream: list[dict[str, Any]] = []
    keys, done = [key], set()
    while keys and len(downstream) < 50:
        k = keys.pop(0)
        if k in done:
            continue
        done.add(k)
        for x in links:
            if x.parent_key == k and x.event_id not in seen:
                seen.add(x.event_id)
                downstream.append(x.to_dict())
                if x.child_key:
                    keys.append(x.child_key)
    return {"upstream": list(reversed(upstream)), "downstream": downstream}
