"""Credential and identity lineage: which identity made which credential or identity, from the events.

Every call that hands out a credential or makes an identity another can act as leaves a *link*
from the caller (its ``actor``) to what it made:

* ``access_key`` — ``CreateAccessKey``: the user the key belongs to and the key id (only in the
  raw record, ``responseElements.accessKey.accessKeyId``);
* ``user`` / ``login_profile`` — ``CreateUser``, ``CreateLoginProfile``, ``UpdateLoginProfile``:
  the user whose sign-ins and calls follow;
* ``assume_role`` — ``AssumeRole``, ``AssumeRoleWithSAML``, ``AssumeRoleWithWebIdentity``: the
  session (``responseElements.assumedRoleUser.arn``, as an actor ``<role ARN>/<session>``), its
  temporary key (``responseElements.credentials.accessKeyId``) and its ``sourceIdentity``; a
  role chain is a link whose caller is itself a session, in the same account or another;
* ``trust`` — ``CreateRole`` / ``UpdateAssumeRolePolicy`` whose trust policy names a principal
  outside the role's account (or ``*``): the role, whose later sessions follow;
* ``outside_use`` — a machine role's credentials (a Lambda function's, an instance's, a
  pipeline's) used outside their resource: from a public address, and, as the
  ``automation_misuse`` detector's reasons say of a group of unusual events, outside AWS, from a
  network the role never used, or at a keyboard (:func:`outside_uses`). The role hands its
  session and key to whoever holds them there, and that address is where the story goes on.

Only successful calls make links (``outside_use`` links come from the run's unusual events, not
from one call's record). The links are kept in the state database (table ``lineage``,
owned by this module, created with ``CREATE TABLE IF NOT EXISTS``) as ``detect`` meets them, so a
later run and ``watch`` see lineage that began before their own range. :func:`links_from_view`
reads a range of a run's calls view, whichever engine made it (``detect`` passes its links to
the stories), :func:`links_from_lake` a range of the lake (``investigate``), both with one parser;
:func:`save_links` stores them, :func:`stored_links` reads them back.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import duckdb

from trailsight.finding import Finding
from trailsight.store import lake
from trailsight.store.layout import StoreLayout
from trailsight.store.state import plain_relation, raw_connection, table_exists

__all__ = [
    "LINEAGE_APIS",
    "LINEAGE_CALLS",
    "LINEAGE_COLUMNS",
    "MACHINE_MISUSE",
    "Link",
    "ensure_table",
    "links_from_lake",
    "links_from_view",
    "links_of",
    "novelty_rates",
    "outside_principals",
    "outside_uses",
    "save_links",
    "save_novelty",
    "session_actor",
    "stored_links",
    "user_node",
]

#: The APIs whose successful calls make a link.
LINEAGE_APIS: Final = (
    "CreateAccessKey",
    "CreateUser",
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "CreateRole",
    "UpdateAssumeRolePolicy",
)

_DDL: Final = """CREATE TABLE IF NOT EXISTS lineage(
    event_id VARCHAR NOT NULL, link VARCHAR NOT NULL, event_time TIMESTAMPTZ NOT NULL,
    account_id VARCHAR, api VARCHAR, parent VARCHAR, parent_key VARCHAR, source_ip VARCHAR,
    child VARCHAR, child_key VARCHAR, child_account VARCHAR, detail VARCHAR,
    PRIMARY KEY (event_id, link))"""

_NOVELTY_DDL: Final = """CREATE TABLE IF NOT EXISTS story_novelty(
    actor VARCHAR NOT NULL, day DATE NOT NULL, signals INTEGER NOT NULL, PRIMARY KEY (actor, day))"""

_ASSUMED_RE: Final = re.compile(r"arn:([\w-]+):sts::(\d*):assumed-role/(.+)/([^/]+)$")
_ARN_ACCOUNT_RE: Final = re.compile(r"arn:[\w-]+:[\w-]*::(\d{12}):")
_ROLE_SESSION_RE: Final = re.compile(r"arn:[\w-]+:iam::\d*:role/(?:.*/)?[^/]+/[^/]+$")


@dataclass(frozen=True, kw_only=True)
class Link:
    """One lineage link: ``parent`` (an actor) made ``child`` (an identity) and/or ``child_key``."""

    event_id: str
    link: str  # access_key | user | login_profile | assume_role | trust | outside_use
    event_time: datetime
    account_id: str
    api: str
    parent: str  # the caller's actor
    parent_key: str | None
    source_ip: str | None
    child: str | None  # user ARN, session actor (<role ARN>/<session>) or role ARN
    child_key: str | None  # the access key handed out
    child_account: str | None
    detail: str | None  # sourceIdentity, or the outside principals of a trust policy

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (time as ISO 8601 UTC with 'Z')."""
        return {
            "event_id": self.event_id,
            "link": self.link,
            "event_time": self.event_time.isoformat().replace("+00:00", "Z"),
            "account_id": self.account_id,
            "api": self.api,
            "parent": self.parent,
            "parent_key": self.parent_key,
            "source_ip": self.source_ip,
            "child": self.child,
            "child_key": self.child_key,
            "child_account": self.child_account,
            "detail": self.detail,
        }


def session_actor(assumed_role_arn: str) -> str | None:
    """The actor (``arn:aws:iam::ACCT:role/NAME/SESSION``) of an ``assumed-role`` ARN, as ingest writes it."""
    m = _ASSUMED_RE.match(assumed_role_arn)
    if m is None:
        return None
    partition, account, role, session = m.groups()
    return f"arn:{partition}:iam::{account}:role/{role}/{session}"


def user_node(account_id: str, user: str) -> str:
    """The node naming IAM user ``user`` (a name or an ARN, path ignored) of ``account_id``."""
    name = user.rsplit("/", 1)[-1]
    return f"user:{account_id}:{name}"


def _policy(document: Any) -> Any:
    if isinstance(document, str):
        text = urllib.parse.unquote(document) if document.startswith("%7B") else document
        try:
            return json.loads(text)
        except ValueError:
            return None
    return document


def outside_principals(document: Any, account_id: str) -> list[str]:
    """The AWS principals a trust policy lets in that are outside ``account_id`` (``*`` included)."""
    policy = _policy(document)
    if not isinstance(policy, dict):
        return []
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    out: list[str] = []
    for st in statements if isinstance(statements, list) else []:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        values: list[Any] = []
        if principal == "*":
            values = ["*"]
        elif isinstance(principal, dict):
            aws = principal.get("AWS")
            values = aws if isinstance(aws, list) else [aws] if aws is not None else []
        for v in values:
            text = str(v)
            m = _ARN_ACCOUNT_RE.match(text)
            owner = m.group(1) if m else text if text.isdigit() else None
            if text == "*" or (owner is not None and owner != account_id):
                out.append(text)
    return sorted(set(out))


def _get(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def links_of(row: dict[str, Any]) -> list[Link]:
    """The links one successful lineage event makes (``row``: lake columns incl. ``raw``)."""
    try:
        raw = json.loads(row["raw"]) if row.get("raw") else {}
    except ValueError:
        return []
    req = raw.get("requestParameters") if isinstance(raw, dict) else None
    resp = raw.get("responseElements") if isinstance(raw, dict) else None
    api = str(row["event_name"])
    account = str(row["account_id"])
    base: dict[str, Any] = {
        "event_id": str(row["event_id"]),
        "event_time": row["event_time"],
        "account_id": account,
        "api": api,
        "parent": str(row["actor"]),
        "parent_key": row.get("access_key_id"),
        "source_ip": row.get("source_ip"),
    }
    if api == "CreateAccessKey":
        key = _get(resp, "accessKey", "accessKeyId")
        user = _get(resp, "accessKey", "userName") or _get(req, "userName")
        if not key:
            return []
        child = user_node(account, str(user)) if user else None
        return [Link(**base, link="access_key", child=child, child_key=str(key), child_account=account, detail=None)]
    if api in ("CreateUser", "CreateLoginProfile", "UpdateLoginProfile"):
        user = _get(resp, "user", "userName") or _get(resp, "loginProfile", "userName") or _get(req, "userName")
        if not user:
            return []
        kind = "user" if api == "CreateUser" else "login_profile"
        return [
            Link(
                **base,
                link=kind,
                child=user_node(account, str(user)),
                child_key=None,
                child_account=account,
                detail=None,
            )
        ]
    if api.startswith("AssumeRole"):
        arn = _get(resp, "assumedRoleUser", "arn")
        key = _get(resp, "credentials", "accessKeyId")
        if not arn and not key:
            return []
        actor = session_actor(str(arn)) if arn else None
        m = _ARN_ACCOUNT_RE.match(str(arn or _get(req, "roleArn") or ""))
        source_identity = _get(resp, "sourceIdentity") or _get(req, "sourceIdentity")
        return [
            Link(
                **base,
                link="assume_role",
                child=actor,
                child_key=str(key) if key else None,
                child_account=m.group(1) if m else None,
                detail=str(source_identity) if source_identity else None,
            )
        ]
    if api in ("CreateRole", "UpdateAssumeRolePolicy"):
        doc = _get(req, "assumeRolePolicyDocument") if api == "CreateRole" else _get(req, "policyDocument")
        outside = outside_principals(doc, account)
        name = _get(req, "roleName")
        if not outside or not name:
            return []
        role = _get(resp, "role", "arn") or f"arn:aws:iam::{account}:role/{name}"
        return [
            Link(
                **base,
                link="trust",
                child=str(role),
                child_key=None,
                child_account=account,
                detail=",".join(outside),
            )
        ]
    return []


#: The automation_misuse reasons that say a machine role's credentials were used by someone else:
#: from a public network outside AWS, from a network it never used, or interactively.
MACHINE_MISUSE: Final = ("automation_outside_aws", "automation_new_network", "automation_interactive")


def outside_uses(findings: Iterable[Finding]) -> list[Link]:
    """``outside_use`` links of the groups of unusual events in ``findings`` (raised or not).

    A group of a role session whose reasons say its machine credentials were used by someone else
    (:data:`MACHINE_MISUSE`) gives one link, for the first public address it came from: from the
    role to its session and key, at the group's first event.
    """
    out: list[Link] = []
    for f in findings:
        if not any(r.code in MACHINE_MISUSE for r in f.reasons) or not _ROLE_SESSION_RE.match(f.actor or ""):
            continue
        for n in f.networks:
            if n.ip_kind != "public":
                continue
            out.append(
                Link(
                    event_id=f.event_ids[0],
                    link="outside_use",
                    event_time=f.first_seen,
                    account_id=f.account_id,
                    api="(outside AWS)",
                    parent=f.principal,
                    parent_key=None,
                    source_ip=n.ip,
                    child=f.actor,
                    child_key=f.access_keys[0] if f.access_keys else None,
                    child_account=f.account_id,
                    detail=n.as_org,
                )
            )
    # One link per event and kind (the table's key): the first address of a group.
    return sorted({x.event_id: x for x in reversed(out)}.values(), key=lambda x: (x.event_time, x.event_id))


#: The columns of a lineage call :func:`links_of` reads.
LINEAGE_COLUMNS: Final = (
    "event_id",
    "event_time",
    "account_id",
    "event_name",
    "actor",
    "access_key_id",
    "source_ip",
    "raw",
)

#: The calls that may make a link, in SQL DuckDB and Spark both read: successful calls of :data:`LINEAGE_APIS`.
LINEAGE_CALLS: Final = "event_name IN ({}) AND error_code IS NULL".format(", ".join(f"'{n}'" for n in LINEAGE_APIS))


def _links_of_relation(rel: duckdb.DuckDBPyRelation) -> list[Link]:
    """The links made by the lineage calls of an events relation, in time order (the one parser of both readers)."""
    columns = ", ".join("epoch_us(event_time) AS event_time" if c == "event_time" else c for c in LINEAGE_COLUMNS)
    cursor = rel.filter(LINEAGE_CALLS).project(columns)
    names = list(cursor.columns)
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    for row in rows:
        row["event_time"] = _time(row["event_time"])
    out = [link for row in rows for link in links_of(row)]
    return sorted(out, key=lambda x: (x.event_time, x.event_id, x.link))


def links_from_lake(layout: StoreLayout, since: datetime, until: datetime) -> list[Link]:
    """The links made by the lake's events in ``[since, until)``, in time order."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return _links_of_relation(lake.open_events(con, layout, since, until))
    finally:
        con.close()


def links_from_view(con: Any, view: str, since: datetime, until: datetime) -> list[Link]:
    """The links made by the events of ``view`` in ``[since, until)``, in time order.

    ``con`` is a DuckDB connection or an Ibis DuckDB backend; ``view`` names a relation of it with
    (at least) the range's successful lineage calls and :data:`LINEAGE_COLUMNS` and ``error_code``
    — a run's calls view (:meth:`trailsight.engines.base.OpenRange.calls_for`), whichever engine
    made it. Gives what :func:`links_from_lake` gives over the same events.
    """
    rel = raw_connection(con).sql(
        f"SELECT * FROM {plain_relation(view, 'lineage')} WHERE event_time >= ? AND event_time < ?",
        params=[since.astimezone(UTC), until.astimezone(UTC)],
    )
    return _links_of_relation(rel)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``lineage`` and ``story_novelty`` tables if they are missing."""
    con.execute(_DDL)
    con.execute(_NOVELTY_DDL)


def save_novelty(con: duckdb.DuckDBPyConnection, counts: Mapping[tuple[str, date], int]) -> None:
    """Store each (actor, UTC day)'s count of weak signals (a day scored again is replaced)."""
    ensure_table(con)
    rows = [[actor, day, n] for (actor, day), n in counts.items()]
    if rows:
        con.executemany("INSERT OR REPLACE INTO story_novelty VALUES (?, ?, ?)", rows)


def novelty_rates(con: duckdb.DuckDBPyConnection, before: date, days: int) -> dict[str, float]:
    """Each actor's weak signals a day over the ``days`` days before ``before`` (days it had none count)."""
    if not table_exists(con, "story_novelty"):
        return {}
    rows = con.execute(
        "SELECT actor, sum(signals) FROM story_novelty WHERE day < ? AND day >= ? GROUP BY actor",
        [before, before - timedelta(days=days)],
    ).fetchall()
    return {str(a): float(n) / max(1, days) for a, n in rows}


def save_links(con: duckdb.DuckDBPyConnection, links: Iterable[Link]) -> int:
    """Store ``links`` (a link already stored is kept as it is); returns how many were given."""
    ensure_table(con)
    rows = [
        [
            x.event_id,
            x.link,
            x.event_time,
            x.account_id,
            x.api,
            x.parent,
            x.parent_key,
            x.source_ip,
            x.child,
            x.child_key,
            x.child_account,
            x.detail,
        ]
        for x in links
    ]
    if rows:
        con.executemany("INSERT OR IGNORE INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def stored_links(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    keys: Sequence[str] = (),
) -> list[Link]:
    """Stored links made in ``[since, until)`` (or, with ``keys``, those handing out or using them)."""
    if not table_exists(con, "lineage"):
        return []
    sql = (
        "SELECT event_id, link, epoch_us(event_time) AS event_time, account_id, api, parent, parent_key, "
        "source_ip, child, child_key, child_account, detail FROM lineage WHERE true"
    )
    params: list[Any] = []
    if since is not None:
        sql += " AND event_time >= ?"
        params.append(since)
    if until is not None:
        sql += " AND event_time < ?"
        params.append(until)
    if keys:
        sql += " AND (child_key IN (SELECT unnest(?::VARCHAR[])) OR parent_key IN (SELECT unnest(?::VARCHAR[])))"
        params += [list(keys), list(keys)]
    sql += " ORDER BY event_time, event_id, link"
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description or []]
    out = []
    for r in cursor.fetchall():
        row = dict(zip(names, r, strict=True))
        out.append(Link(**{**row, "event_time": _time(row["event_time"])}))
    return out


def _time(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
