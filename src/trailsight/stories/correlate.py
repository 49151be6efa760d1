"""Attack stories: join findings and weak signals linked by lineage, actor or network into one finding.

Source: the idea of GuardDuty's Extended Threat Detection (``AttackSequence:*`` findings that
join signals and findings), Elastic's and Splunk's risk-based alerting (weak signals adding up
per entity) and the kill-chain view of ATT&CK tactics; the algorithm here is trailsight's own.

Algorithm, in plain words:

1. **Units.** Every finding the run raised, and every group of unusual events that stayed below
   the alert level (a *weak signal*), is a unit. Each unit names *nodes*: its actor, its IAM user,
   its access keys, its role when that role trusts an outside principal, and its public source
   IPs when few actors share them (``max_network_actors``).
2. **Links.** Each lineage link (:mod:`trailsight.store.lineage`) of the window joins the
   caller's actor to what it made: the key it created, the user it made or gave a password, the
   role session it opened (by the session and its key, so role chains and other accounts follow),
   the role it opened to an outside principal. A caller that handed credentials to more than
   :data:`MAX_FANOUT` others in the window is a broker (single sign-on, CI) and joins nobody.
3. **Components.** Units sharing a node, directly or through links, form a component; a
   component is cut wherever more than ``window_days`` pass between one unit and the next.
4. **Stories.** A component becomes a story when it holds two or more units and (a) spans two or
   more actors with at least one raised finding, (b) holds two or more raised findings, (c) holds
   a raised finding and covers two or more kill-chain stages, or (d) its weak signals add up
   (:mod:`trailsight.stories.risk`).
5. **The story.** Its steps (members, weak signals and the links that joined them) in time order
   with their tactic; its score combines the raised members like independent evidence (the
   strongest fully, each further one ``further_share`` of its score) or is the accumulated risk;
   its severity is Critical when the steps reach an objective (persistence, evasion,
   exfiltration, impact) after two or more other stages, or across principals joined by lineage,
   else High; its id is a hash of its earliest member's id, so a growing story keeps it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from trailsight.finding import TACTICS, Finding, NetworkInfo, StoryStep
from trailsight.findings.names import person_name, short_arn
from trailsight.scoring.policy import CONFIDENCE_BANDS
from trailsight.store.lineage import Link, user_node
from trailsight.stories.follow import ADDRESS_USE
from trailsight.stories.options import StoryOptions
from trailsight.stories.risk import Accumulated, accumulate

__all__ = ["MAX_FANOUT", "STAGES", "build_stories", "parent_node", "session_key_nodes", "story_id"]

#: A caller handing credentials to more identities than this in the window is a broker.
MAX_FANOUT: Final = 25

#: Kill-chain stage of each ATT&CK tactic (what a story's severity counts).
STAGES: Final[dict[str, str]] = {
    "InitialAccess": "access",
    "CredentialAccess": "access",
    "Discovery": "discovery",
    "Collection": "discovery",
    "PrivilegeEscalation": "escalation",
    "LateralMovement": "escalation",
    "Execution": "escalation",
    "Persistence": "objective",
    "DefenseEvasion": "objective",
    "Exfiltration": "objective",
    "Impact": "objective",
}

_LINK_TACTIC: Final = {
    "access_key": "Persistence",
    "user": "Persistence",
    "login_profile": "Persistence",
    "assume_role": "PrivilegeEscalation",
    "trust": "Persistence",
    "outside_use": "InitialAccess",
}


_ROLE_RE: Final = re.compile(r"arn:[\w-]+:iam::(\d*):role/(?:.*/)?([^/]+)/[^/]+$")


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class _Unit:
    finding: Finding
    raised: bool
    use: bool = False  # the calls of an identity a link made (trailsight.stories.follow), not a signal

    @property
    def actor(self) -> str:
        return self.finding.actor or self.finding.principal


def story_id(seed_id: str) -> str:
    """Stable id of a story: a hash of its earliest member's id."""
    return "ts-story-" + hashlib.sha256(seed_id.encode()).hexdigest()[:24]


def _network_text(n: NetworkInfo | None) -> str | None:
    if n is None:
        return None
    where = ", ".join(str(x) for x in (n.as_org, n.city, n.country) if x)
    return f"{n.ip} ({where})" if where else n.ip


def _link_nodes(link: Link) -> list[str]:
    nodes: list[str] = []
    if link.child:
        if link.child.startswith("user:"):
            nodes.append(link.child)
        elif link.link == "trust":
            nodes.append("r:" + link.child)
        else:
            nodes.append("a:" + link.child)
    owner = _key_owner(link)
    if link.child_key and owner is not None:
        nodes.append(_key_node(link.child_key, *owner))
    if link.link == "outside_use" and link.source_ip:
        # Where a machine's credentials were used outside AWS: what else came from there joins.
        nodes.append("n:" + link.source_ip)
    if link.link == "assume_role" and owner is not None and link.source_ip:
        # The session used from the address that opened it (when neither its key nor its
        # session name shows in its events, e.g. an automation role's random session names).
        nodes.append(_session_node(*owner, link.source_ip))
    return nodes


def _session_node(account: str, role: str, ip: str) -> str:
    return f"s:{account}:{role}@{ip}"


def _key_node(key: str, account: str, name: str) -> str:
    # A key belongs to one identity: the node names it, so a key id seen again under another
    # identity (a replayed or re-used capture) links nothing.
    return f"k:{key}@{account}:{name}"


def _key_owner(link: Link) -> tuple[str, str] | None:
    """(account, user or role name) the key ``link`` handed out belongs to."""
    if link.child is None:
        return None
    if link.child.startswith("user:"):
        _, account, name = link.child.split(":", 2)
        return account, name
    m = _ROLE_RE.match(link.child)
    return (m.group(1), m.group(2)) if m else None


def _is_session(actor: str) -> bool:
    """Whether ``actor`` is a role session (``<role ARN>/<session>``): its credential is one temporary key."""
    return _ROLE_RE.match(actor) is not None


def parent_node(link: Link) -> str:
    """The node a link's caller joins by: its session's key for a role session, else its actor."""
    m = _ROLE_RE.match(link.parent)
    if m and link.parent_key:
        return _key_node(link.parent_key, m.group(1) or link.account_id, m.group(2))
    return "a:" + link.parent


def session_key_nodes(f: Finding) -> list[str]:
    """The key nodes of finding ``f``'s credentials (what a link made with them joins by)."""
    name = f.principal.rsplit("/", 1)[-1]
    return [_key_node(k, f.account_id, name) for k in f.access_keys]


def _unit_nodes(
    f: Finding,
    raised: bool,
    trusted: set[str],
    shared_ips: set[str],
    options: StoryOptions,
    suspect: set[str],
    use: bool = False,
) -> list[str]:
    actor = f.actor or f.principal
    # A role session's credential is its temporary key: its weak signals join by that key, and
    # among themselves ("w:"), not by the person or role behind it, whose other sessions are
    # other credentials. Raised findings of one actor still join each other.
    nodes = ["a:" + actor] if raised or not _is_session(actor) else ["w:" + actor]
    if use:  # what a made identity did joins by what it was given (key, user, address), not by its actor
        nodes = []
    if ":user/" in f.principal:
        nodes.append(user_node(f.account_id, f.principal))
    name = f.principal.rsplit("/", 1)[-1]
    nodes += session_key_nodes(f)
    if f.principal in trusted:
        nodes.append("r:" + f.principal)
    if ":role/" in f.principal:
        nodes += [_session_node(f.account_id, name, n.ip) for n in f.networks]
    if options.network_links and raised:
        # Only raised findings carry their networks: a weak signal's address is everyday noise,
        nodes += ["n:" + n.ip for n in f.networks if n.ip_kind == "public" and n.ip not in shared_ips]
    else:
        # unless a machine's credentials were used from it outside AWS (an ``outside_use`` link).
        nodes += ["n:" + n.ip for n in f.networks if n.ip in suspect and n.ip not in shared_ips]
    return nodes


def _link_what(link: Link) -> str:
    child = short_arn(link.child or "") if link.child and not link.child.startswith("user:") else ""
    user = link.child.split(":", 2)[-1] if link.child and link.child.startswith("user:") else ""
    if link.link == "access_key":
        return f"created access key {link.child_key}" + (f" for user {user}" if user else "")
    if link.link == "user":
        return f"created user {user}"
    if link.link == "login_profile":
        verb = "set a console password for" if link.api == "CreateLoginProfile" else "changed the console password of"
        return f"{verb} user {user}"
    if link.link == "trust":
        return f"let {link.detail} assume role {child}"
    if link.link == "outside_use":
        key = f" (key {link.child_key})" if link.child_key else ""
        where = f", by {link.detail}" if link.detail else ""
        return f"had the credentials of its session {child}{key} used outside their resource{where}"
    where = f" in account {link.child_account}" if link.child_account and link.child_account != link.account_id else ""
    key = f", key {link.child_key}" if link.child_key else ""
    source = f", source identity {link.detail}" if link.detail else ""
    m = _ROLE_RE.match(link.child or "")
    role = f"role {m.group(2)} (session {link.child.rsplit('/', 1)[-1]})" if m and link.child else child or "a role"
    return f"assumed {role}{where}{key}{source}"


def build_stories(
    raised: Sequence[Finding],
    weak: Sequence[Finding],
    links: Sequence[Link],
    options: StoryOptions,
    *,
    run_days: float,
    history: Mapping[str, float] | None = None,
    uses: Sequence[Finding] = (),
) -> tuple[list[Finding], list[Finding]]:
    """Stories of the run, and the raised findings with ``story_id`` set on members.

    ``raised`` are the findings over the alert level, ``weak`` the groups below it, ``links``
    the lineage of the window, ``run_days`` the length of the scored range, ``history`` each
    actor's usual weak signals a day (see :mod:`trailsight.stories.risk`) and ``uses`` what the
    identities the links made did (:func:`trailsight.stories.follow.follow_ups`).
    """
    if not options.enabled or not (raised or weak):
        return [], list(raised)
    window = timedelta(days=options.window_days)
    units = [_Unit(f, True) for f in raised] + [_Unit(f, False) for f in weak] + [_Unit(f, False, True) for f in uses]
    actors_by_ip: dict[str, set[str]] = defaultdict(set)
    for u in units:
        for n in u.finding.networks:
            actors_by_ip[n.ip].add(u.actor)
    shared_ips = {ip for ip, actors in actors_by_ip.items() if len(actors) > options.max_network_actors}
    fanout: dict[str, set[str]] = defaultdict(set)
    for link in links:
        fanout[link.parent].add(link.child or link.child_key or link.event_id)
    brokers = {p for p, children in fanout.items() if len(children) > MAX_FANOUT}
    useful = [x for x in links if x.parent not in brokers and _link_nodes(x)]
    trusted = {x.child for x in useful if x.link == "trust" and x.child}
    suspect = {x.source_ip for x in useful if x.link == "outside_use" and x.source_ip}

    uf = _UnionFind()
    for link in useful:
        for node in _link_nodes(link):
            uf.union(parent_node(link), node)
    unit_nodes: dict[str, list[str]] = {}
    for u in units:
        nodes = _unit_nodes(u.finding, u.raised, trusted, shared_ips, options, suspect, u.use)
        unit_nodes[u.finding.id] = nodes
        for node in nodes:
            uf.union("u:" + u.finding.id, node)
    components: dict[str, list[_Unit]] = defaultdict(list)
    for u in units:
        components[uf.find("u:" + u.finding.id)].append(u)
    # An identity the window's lineage made (a user created) is a newcomer: every call of its is a
    # first, so its usual rate of harmless novelty is the newcomers' rate, not the established actors'.
    made_users = {x.child for x in links if x.link == "user" and x.child}
    actors = {u.actor for u in units}
    newcomers = {a for a in actors if ":user/" in a and user_node(a.split(":")[4], a) in made_users}
    days = max(run_days, 1.0)
    weak_new = sum(1 for f in weak if (f.actor or f.principal) in newcomers)
    rate_new = weak_new / max(1, len(newcomers)) / days
    rate_old = (len(weak) - weak_new) / max(1, len(actors - newcomers)) / days
    known = history or {}

    def rate_of(actor: str) -> float:
        if actor in known:
            return known[actor]
        return rate_new if actor in newcomers else rate_old

    # Every actor with weak signals is one test: the chance allowed per actor is alpha shared among them.
    tested = max(1, len({u.actor for u in units if not u.raised and not u.use}))

    stories: list[Finding] = []
    member_of: dict[str, str] = {}
    for root in sorted(components):
        members = sorted(components[root], key=lambda u: (u.finding.first_seen, u.finding.id))
        for group in _split(members, window):
            in_group = {n for u in group for n in unit_nodes[u.finding.id]}
            group_links = [x for x in useful if parent_node(x) in in_group or set(_link_nodes(x)) & in_group]
            story = _story(group, group_links, options, rate_of, tested)
            if story is None:
                continue
            stories.append(story)
            for u in group:
                if u.raised:
                    member_of[u.finding.id] = story.id
    out = [replace(f, story_id=member_of[f.id]) if f.id in member_of else f for f in raised]
    return sorted(stories, key=lambda s: (-s.score, s.first_seen, s.id)), out


def _split(members: list[_Unit], window: timedelta) -> list[list[_Unit]]:
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    last: datetime | None = None
    for u in members:
        if current and last is not None and u.finding.first_seen - last > window:
            groups.append(current)
            current = []
            last = None
        current.append(u)
        last = u.finding.last_seen if last is None else max(last, u.finding.last_seen)
    if current:
        groups.append(current)
    return groups


def _story(
    group: list[_Unit],
    links: list[Link],
    options: StoryOptions,
    rate_of: Callable[[str], float],
    tested: int,
) -> Finding | None:
    if len(group) < 2:
        return None
    raised = [u for u in group if u.raised]
    weak = [u for u in group if not u.raised and not u.use]
    actors = sorted({u.actor for u in group})
    tactics = [u.finding.tactic for u in group if u.finding.tactic]
    tactics += [_LINK_TACTIC[x.link] for x in links]
    stages = {STAGES[t] for t in tactics if t in STAGES}
    acc: Accumulated | None = None
    if len(weak) >= options.min_signals:
        # Each actor's weak signals are expected at its own rate: the group's expected rate is their sum.
        rate = sum(rate_of(a) for a in {u.actor for u in weak})
        acc = accumulate([u.finding for u in weak], options, rate, tested)
    cross = len(actors) >= 2 and bool(raised)
    if not (cross or len(raised) >= 2 or (raised and len(stages) >= 2) or (acc is not None and acc.raised)):
        return None
    seed = group[0].finding
    # The title and the principal fields name who did it: the first raised member's principal,
    # else the earliest unit's (the id stays the earliest unit's, so a growing story keeps it).
    lead = raised[0].finding if raised else seed
    scores = sorted((u.finding.score for u in raised), reverse=True)
    score = 0.0
    if scores:
        keep = 1.0 - scores[0]
        for s in scores[1:5]:
            keep *= 1.0 - options.further_share * s
        score = 1.0 - keep
    if acc is not None and acc.raised:
        score = max(score, acc.score)
    score = round(min(1.0, score), 6)
    # A machine role's session used outside its resource is lineage too: the role handed it over.
    lineage_actors = ({x.parent for x in links} | {x.child for x in links if x.link == "outside_use"}) & set(actors)
    by_lineage = len(actors) >= 2 and bool(links) and bool(lineage_actors)
    critical = "objective" in stages and (len(stages) >= 3 or by_lineage)
    severity = round(min(10.0, 9.0 + score), 1) if critical else round(min(8.9, 7.0 + 1.9 * score), 1)
    if by_lineage:
        kind = "IAM/CompromisedCredentials"
    elif len(actors) >= 2:
        kind = "IAM/SharedNetwork"
    elif not raised:
        kind = "IAM/AccumulatedRisk"
    else:
        kind = "IAM/MultiStage"
    principal_of = _principal_of(group)
    steps = _steps(group, links, principal_of)
    order = [t for t in dict.fromkeys(s.tactic for s in steps if s.tactic)]
    top_tactic = (
        max(tactics, key=lambda t: (STAGES.get(t) == "objective", order.index(t) if t in order else -1))
        if tactics
        else None
    )
    high, medium = CONFIDENCE_BANDS
    top = max((u.finding.score for u in group), default=0.0)
    confidence = "High" if top >= high or by_lineage else "Medium" if top >= medium or raised else "Low"
    # The story's own events are its evidence: the raised members (with their sessions' calls),
    # the lineage calls, what the made identities did, and the weak signals only where they are
    # the evidence (accumulated risk) or share a raised member's credential. Other weak signals
    # stay steps, with their events, as context.
    accumulated = acc is not None and acc.raised
    raised_keys = {k for u in raised for k in u.finding.access_keys}
    evidence = [
        (u.finding.first_seen, u.finding.event_ids)
        for u in group
        if u.raised or u.use or accumulated or raised_keys & set(u.finding.access_keys)
    ]
    evidence += [(x.event_time, [x.event_id]) for x in links]
    event_ids = list(dict.fromkeys(e for _, ids in sorted(evidence, key=lambda p: p[0]) for e in ids))
    keys = list(
        dict.fromkeys([k for u in group for k in u.finding.access_keys] + [x.child_key for x in links if x.child_key])
    )
    networks: dict[str, NetworkInfo] = {}
    for u in group:
        for n in u.finding.networks:
            networks.setdefault(n.ip, n)
    days = len({s.time.astimezone(UTC).date() for s in steps})

    def who(actor: str) -> str:  # person first: ``ava@… via AWSReservedSSO_Dev``
        return person_name(principal_of(actor), actor)

    names = ", ".join(who(a) for a in actors[:4]) + (f" and {len(actors) - 4} more" if len(actors) > 4 else "")
    explanation = [
        f"{len(steps)} steps by {len(actors)} principal(s) ({names}) over {days} day(s): " + " → ".join(order) + "."
    ]
    if by_lineage:
        explanation.append(
            "Joined by credential lineage: " + "; ".join(f"{who(x.parent)} {_link_what(x)}" for x in links[:4]) + "."
        )
    if acc is not None and acc.raised:
        explanation.append(acc.explanation)
    suppressed = [u.finding.id for u in raised if u.finding.status != "Open"]
    if suppressed:
        explanation.append(f"{len(suppressed)} member(s) are suppressed or triaged; they still count here.")
    return Finding(
        id=story_id(seed.id),
        finding_type="AttackSequence:" + kind,
        title=f"Attack story: {person_name(lead.principal, lead.actor)}, {len(steps)} steps by {len(actors)} "
        + "principal(s), "
        + " → ".join(order[:5]),
        principal=lead.principal,
        actor=lead.actor,
        account_id=lead.account_id,
        identity_type=lead.identity_type,
        first_seen=min(s.time for s in steps),
        last_seen=max(u.finding.last_seen for u in group),
        count=len(event_ids),
        score=score,
        risk_score=round(score * 100),
        severity=severity,
        severity_label="Critical" if critical else "High",
        confidence=confidence,
        tactic=top_tactic,
        tactic_id=TACTICS.get(top_tactic) if top_tactic else None,
        technique=None,
        event_ids=event_ids,
        reasons=[r for u in raised for r in u.finding.reasons[:2]][:20],
        anomalous_apis=[a for u in raised for a in u.finding.anomalous_apis][:50],
        networks=list(networks.values()),
        user_agents=list(dict.fromkeys(a for u in group for a in u.finding.user_agents)),
        access_keys=list(dict.fromkeys(keys)),
        session_names=list(dict.fromkeys(s for u in group for s in u.finding.session_names)),
        explanation=explanation,
        detectors={},
        steps=steps,
        principals=actors,
        members=[u.finding.id for u in raised],
    )


def _principal_of(group: list[_Unit]) -> Callable[[str], str]:
    """The principal of an actor of a story: its unit's, a unit's principal itself (a role named
    without a session, as lineage names a role whose credentials were used), else a role
    session's role (``<role ARN>/<session>``)."""
    known = {u.actor: u.finding.principal for u in group} | {u.finding.principal: u.finding.principal for u in group}

    def principal(actor: str) -> str:
        if actor in known:
            return known[actor]
        return actor.rsplit("/", 1)[0] if ":role/" in actor else actor

    return principal


def _steps(group: list[_Unit], links: list[Link], principal_of: Callable[[str], str]) -> list[StoryStep]:
    steps: list[StoryStep] = []
    for u in group:
        f = u.finding
        what = "made unusual calls: " + f.title.split(": ", 1)[-1].removeprefix("unusual ")
        if u.use and f.finding_type == ADDRESS_USE:
            what = "called from that address: " + f.title.split(": ", 1)[-1]
        elif u.use:
            what = "acted with what it was given: " + f.title.split(": ", 1)[-1]
        elif not u.raised:
            what += " (below the alert level)"
        steps.append(
            StoryStep(
                time=f.first_seen,
                principal=f.principal,
                actor=f.actor,
                account_id=f.account_id,
                network=_network_text(f.networks[0] if f.networks else None),
                what=what,
                tactic=f.tactic,
                kind="finding" if u.raised else "use" if u.use else "signal",
                finding_id=f.id if u.raised else None,
                score=round(f.score, 4),
                event_ids=list(f.event_ids),
            )
        )
    for x in links:
        steps.append(
            StoryStep(
                time=x.event_time,
                principal=principal_of(x.parent),
                actor=x.parent,
                account_id=x.account_id,
                network=x.source_ip,
                what=_link_what(x),
                tactic=_LINK_TACTIC[x.link],
                kind="lineage",
                event_ids=[x.event_id],
            )
        )
    return sorted(steps, key=lambda s: (s.time, s.kind != "lineage", s.actor))
