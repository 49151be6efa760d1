"""The finding, and the unusual events it is built from: the domain types every stage shares.

A finding groups the unusual events of one principal that came close together.
It is a frozen, keyword-only dataclass; :func:`Finding.to_dict` gives its JSON form
(the form written to JSON lines, stored in the state database and read by the
exporters and the web UI). Times are timezone-aware UTC.

This module sits at the bottom of the package, beside the event schema
(:mod:`trailsight.schema`): it imports nothing of trailsight, and the detectors, scoring, the
store, the pipeline and the presentation all import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TACTICS: dict[str, str] = {
    "Discovery": "TA0007",
    "InitialAccess": "TA0001",
    "Persistence": "TA0003",
    "PrivilegeEscalation": "TA0004",
    "DefenseEvasion": "TA0005",
    "CredentialAccess": "TA0006",
    "Exfiltration": "TA0010",
    "Impact": "TA0040",
    "Execution": "TA0002",
    "Collection": "TA0009",
    "LateralMovement": "TA0008",
}
"""ATT&CK tactic names (as used in finding types) and their ids."""

SEVERITY_LABELS = ("Low", "Medium", "High", "Critical")
STORY_PREFIX = "AttackSequence:"
"""The finding type prefix of attack stories (trailsight.stories)."""
CONFIDENCE_LABELS = ("Low", "Medium", "High")
STATUSES = ("Open", "Acknowledged", "Dismissed", "Malicious", "Suppressed")


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One usual value and how often it occurs (for 'what is usual')."""

    value: str
    count: int
    days: int = 0
    frequency: str = "unseen"  # frequent | infrequent | rare | unseen


@dataclass(frozen=True, kw_only=True)
class Reason:
    """Why an event or finding is unusual: a detector's reason code with its evidence."""

    detector: str
    code: str
    score: float
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class UnusualEvent:
    """One event scoring above the threshold: its feature row and its combined scores.

    The hand-off from scoring (:mod:`trailsight.scoring.events`) to grouping
    (:mod:`trailsight.findings.group`). ``row`` holds the event's feature columns
    (``event_id``, ``event_time``, ``principal``, ``api``, ``api_risk`` ...), as the engine
    computed them.
    """

    row: Mapping[str, Any]
    score: float  # the event score (surprise × API risk factor), 0..1
    risk: float  # the API's risk weight, 0..1
    what: float  # novelty of what was done, 0..1
    context: float  # novelty of where / how it was done, 0..1
    corroborated: bool  # two or more context signals on this event
    gated: bool  # too little history: unusual only because the API is high-risk
    reasons: tuple[Reason, ...]

    @property
    def event_id(self) -> str:
        """The CloudTrail event id."""
        return str(self.row["event_id"])

    @property
    def event_time(self) -> datetime:
        """When the event happened (UTC)."""
        value: datetime = self.row["event_time"]
        return value

    @property
    def principal(self) -> str:
        """The principal ARN that made the call."""
        return str(self.row["principal"])

    @property
    def account_id(self) -> str:
        """The account the call was made in."""
        return str(self.row["account_id"])


@dataclass(frozen=True, kw_only=True)
class UnusualAttribute:
    """One attribute (API, ASN, country, user agent, hour ...) that is unusual."""

    attribute: str  # api | asn | country | city | user_agent | region | error_code | hour
    value: str
    unusual_for_principal: bool
    unusual_for_account: bool
    principal_usual: list[Evidence] = field(default_factory=list)
    account_usual: list[Evidence] = field(default_factory=list)
    principals_in_account_using: int = 0


@dataclass(frozen=True, kw_only=True)
class ApiCall:
    """An anomalous API of the finding, with its outcome counts."""

    service: str
    event_name: str
    success: int
    failure: int
    error_codes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NetworkInfo:
    """A source IP of the finding with its network and geolocation."""

    ip: str
    ip_kind: str | None = None
    net_class: str | None = None  # trailsight.enrich.netclass.NET_CLASSES
    asn: int | None = None
    as_org: str | None = None
    city: str | None = None
    country: str | None = None
    events: int = 0


@dataclass(frozen=True, kw_only=True)
class TimelineEntry:
    """One event of the finding's timeline."""

    event_id: str
    event_time: datetime
    event_name: str
    service: str
    error_code: str | None
    source_ip: str | None
    unusual: bool
    score: float


@dataclass(frozen=True, kw_only=True)
class EffectEntry:
    """What one call of the finding did (an admin grant, a share, logging off …), in plain words."""

    kind: str  # an effect kind of trailsight.enrich.effects (effect_kinds.csv)
    tactic: str
    technique: str
    description: str
    succeeded: bool
    event_id: str
    event_time: datetime


@dataclass(frozen=True, kw_only=True)
class ResourceEntry:
    """A resource the finding's calls acted on, with how many of its calls touched it."""

    type: str
    id: str
    events: int = 1


@dataclass(frozen=True, kw_only=True)
class Counterparty:
    """Who else the calls involved: an ``account`` shared with, a ``principal`` granted, an ``access key`` created …"""

    kind: str
    id: str
    via: str = ""  # the effect kind (or API) that named it


@dataclass(frozen=True, kw_only=True)
class StoryStep:
    """One step of an attack story: a member finding, a weak signal or a lineage link, in words."""

    time: datetime
    principal: str
    actor: str
    account_id: str
    network: str | None
    what: str
    tactic: str | None
    kind: str  # finding | signal | lineage
    finding_id: str | None = None  # the member finding (kind "finding")
    score: float = 0.0
    event_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One finding: unusual events of one principal close together in time."""

    id: str
    finding_type: str
    title: str
    principal: str
    actor: str
    account_id: str
    identity_type: str
    first_seen: datetime
    last_seen: datetime
    count: int
    score: float  # 0..1, higher = more anomalous; used for ranking
    risk_score: int  # 0..100
    severity: float  # GuardDuty bands: Low 1-3.9, Medium 4-6.9, High 7-8.9
    severity_label: str
    confidence: str
    tactic: str | None
    tactic_id: str | None
    technique: str | None
    event_ids: list[str]
    reasons: list[Reason]
    anomalous_apis: list[ApiCall] = field(default_factory=list)
    unusual: list[UnusualAttribute] = field(default_factory=list)
    usual_apis_principal: list[Evidence] = field(default_factory=list)
    usual_apis_account: list[Evidence] = field(default_factory=list)
    networks: list[NetworkInfo] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    access_keys: list[str] = field(default_factory=list)
    session_names: list[str] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    detectors: dict[str, float] = field(default_factory=dict)  # detector -> 0..100 anomaly score
    effects: list[EffectEntry] = field(default_factory=list)
    resources: list[ResourceEntry] = field(default_factory=list)
    counterparties: list[Counterparty] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    status: str = "Open"
    gated: bool = False  # too little history: raised with a note instead of scored normally
    story_id: str | None = None  # the story this finding is a member of
    steps: list[StoryStep] = field(default_factory=list)  # a story's steps, in time order
    principals: list[str] = field(default_factory=list)  # a story's principals (actors), all of them
    members: list[str] = field(default_factory=list)  # a story's member finding ids

    @property
    def is_story(self) -> bool:
        """Whether this finding is an attack story (``AttackSequence:*``)."""
        return self.finding_type.startswith(STORY_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form (datetimes as ISO 8601 UTC with 'Z')."""
        result: dict[str, Any] = _jsonable(dataclasses.asdict(self))
        return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
