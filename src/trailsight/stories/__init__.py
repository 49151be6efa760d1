"""Attack stories: findings and weak signals joined by lineage, actor and network (docs/stories.md).

:func:`tell` is the pipeline's one call: it takes the lineage the range's calls made (which the
pipeline read from the engine's calls view, whichever engine) and the state database's for the
days before, joins the run's findings and weak signals (:mod:`trailsight.stories.correlate`,
:mod:`trailsight.stories.risk`) and returns a :class:`StoryRun` that :func:`save` stores beside
the findings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb

from trailsight.config import Settings
from trailsight.finding import Finding
from trailsight.scoring.options import ScoringOptions
from trailsight.store import lineage
from trailsight.store.findings import connect_state
from trailsight.store.layout import StoreLayout
from trailsight.stories.correlate import build_stories, parent_node, session_key_nodes
from trailsight.stories.follow import address_uses, follow_ups
from trailsight.stories.options import StoryOptions

__all__ = ["StoryOptions", "StoryRun", "fold", "save", "tell"]


@dataclass(frozen=True, kw_only=True)
class StoryRun:
    """What :func:`tell` found: the stories, the findings (members linked), and the state to save."""

    stories: list[Finding] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    links: list[lineage.Link] = field(default_factory=list)
    novelty: dict[tuple[str, date], int] = field(default_factory=dict)


def tell(
    layout: StoreLayout,
    raised: Sequence[Finding],
    weak: Sequence[Finding],
    since: datetime,
    until: datetime,
    settings: Settings | None,
    *,
    made: Sequence[lineage.Link],
) -> StoryRun:
    """Stories of ``[since, until)`` from its raised findings and weak signals.

    ``made`` is the lineage the range's calls made (:func:`trailsight.store.lineage.links_from_view`
    over the run's calls view, whichever engine read them).
    """
    options = StoryOptions.from_settings(settings)
    if not options.enabled:
        return StoryRun(findings=list(raised))
    window = timedelta(days=options.window_days)
    fresh = sorted(
        [*made, *lineage.outside_uses([*raised, *weak])],
        key=lambda x: (x.event_time, x.event_id, x.link),
    )
    earlier: list[lineage.Link] = []
    history: dict[str, float] = {}
    if layout.state.is_file():
        with connect_state(layout, read_only=True) as con:
            earlier = lineage.stored_links(con, since - window, since)
            history = lineage.novelty_rates(con, since.astimezone(UTC).date(), max(1, round(options.window_days)))
    known = {(x.event_id, x.link) for x in fresh}
    links = [x for x in earlier if (x.event_id, x.link) not in known] + fresh
    run_days = (until - since).total_seconds() / 86400.0
    # What the identities made by a raised finding's actor then did, unusual or not
    # (by its key when the caller is a role session: what the person's other sessions made is not followed).
    made_by_raised = {"a:" + (f.actor or f.principal) for f in raised} | {
        n for f in raised for n in session_key_nodes(f)
    }
    uses = follow_ups(layout, [x for x in links if parent_node(x) in made_by_raised], until)
    gap = timedelta(minutes=ScoringOptions.from_settings(settings).gap_minutes)
    uses += address_uses(layout, [x for x in fresh if x.link == "outside_use"], gap, options.max_network_actors)
    stories, findings = build_stories(raised, weak, links, options, run_days=run_days, history=history, uses=uses)
    novelty = Counter((f.actor or f.principal, f.first_seen.astimezone(UTC).date()) for f in weak)
    return StoryRun(stories=stories, findings=findings, links=fresh, novelty=dict(novelty))


def save(con: duckdb.DuckDBPyConnection, run: StoryRun) -> None:
    """Store the run's lineage links and weak-signal counts (the stories are saved as findings)."""
    lineage.save_links(con, run.links)
    lineage.save_novelty(con, run.novelty)


def fold(findings: Sequence[Finding]) -> list[Finding]:
    """The findings an analyst reads first: stories, and the findings that are no story's member."""
    return [f for f in findings if f.is_story or f.story_id is None]
