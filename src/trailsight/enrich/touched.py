"""What a call touched: the resources it acted on and the counterparties it involved.

GuardDuty's affected-resource panel, for one CloudTrail call: the resources come from the
record's ``resources`` array (ARNs CloudTrail lists itself), and from the fields of
``requestParameters`` and ``responseElements`` that name a resource — which fields, and what
kind of resource each names, is data: ``catalog/resource_fields.csv``. Counterparties are who
else the call involved: the accounts a resource was shared with and the principals a grant or
trust went to (from :mod:`trailsight.enrich.effects`), and the access keys it created
(``responseElements.accessKey`` of ``CreateAccessKey``, ``credentials`` of ``AssumeRole`` and
``GetSessionToken``).

Pure functions of one call; malformed JSON gives nothing rather than an error. Each list is
capped (:data:`MAX_PER_CALL`) so a call with a thousand object keys stays small.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources as package_files
from typing import Any

from trailsight.enrich.effects import Effect, as_strings, field_at, parse_json
from trailsight.errors import ConfigError

FIELDS_FILE = "resource_fields.csv"
FIELDS_COLUMNS = ("field", "type", "asff_type")

#: At most this many resources (and as many counterparties) are taken from one call.
MAX_PER_CALL = 20
_MAX_DEPTH = 6
_MAX_ID = 256  # longer values are cut (CloudTrail fields are attacker-controlled)
_HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"  # what CloudTrail writes in place of some values


@dataclass(frozen=True, kw_only=True, order=True)
class Touched:
    """One resource a call acted on: its kind (``S3 bucket``, ``IAM role`` …) and its id or ARN."""

    type: str
    id: str


@dataclass(frozen=True, kw_only=True, order=True)
class Party:
    """A counterparty (``account``, ``principal``, ``access key``, ``network``) and the effect that named it."""

    kind: str
    id: str
    via: str = ""


@cache
def _table() -> tuple[dict[str, str], dict[str, str]]:
    text = package_files.files("trailsight.enrich.catalog").joinpath(FIELDS_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    if tuple(reader.fieldnames or ()) != FIELDS_COLUMNS:
        raise ConfigError(f"{FIELDS_FILE}: header must be {','.join(FIELDS_COLUMNS)}")
    fields: dict[str, str] = {}
    asff: dict[str, str] = {}
    for row in reader:
        if row["field"] in fields:
            raise ConfigError(f"{FIELDS_FILE}: duplicate field {row['field']!r}")
        fields[row["field"]] = row["type"]
        asff[row["type"]] = row["asff_type"] or "Other"
    return fields, asff


def load_fields() -> dict[str, str]:
    """``resource_fields.csv``: field name → the kind of resource it names."""
    return _table()[0]


def asff_type(resource_type: str) -> str:
    """Security Hub's resource type for a touched resource's type (``Other`` when it has none).

    Types from the record's ``resources`` array (``AWS::S3::Bucket``) become ``AwsS3Bucket`` when
    that is a type the table knows.
    """
    by_type = _table()[1]
    if resource_type in by_type:
        return by_type[resource_type]
    parts = resource_type.split("::")
    if len(parts) == 3 and parts[0] == "AWS":
        name = "Aws" + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:])
        if name in by_type.values():
            return name
    return "Other"


def _walk(value: Any, fields: Mapping[str, str], depth: int = 0) -> Iterator[Touched]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            kind = fields.get(key) if isinstance(key, str) else None
            if kind is not None:
                for text in as_strings(inner):
                    if text.strip() and text != _HIDDEN:
                        yield Touched(type=kind, id=text.strip()[:_MAX_ID])
            if isinstance(inner, dict | list):
                yield from _walk(inner, fields, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            yield from _walk(inner, fields, depth + 1)


def _listed(resources_json: Any) -> Iterator[Touched]:
    """The record's own ``resources`` array (``[{"ARN": …, "type": "AWS::S3::Bucket"}, …]``)."""
    listed = parse_json(resources_json)
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, dict):
            continue
        arn = item.get("ARN") or item.get("arn")
        if isinstance(arn, str) and arn:
            kind = item.get("type")
            yield Touched(type=kind if isinstance(kind, str) and kind else "resource", id=arn[:_MAX_ID])


def resources_of(request_parameters: Any, response_elements: Any = None, resources_json: Any = None) -> list[Touched]:
    """The resources one call acted on, first-named first, without repeats, at most :data:`MAX_PER_CALL`."""
    fields = load_fields()
    found: dict[Touched, None] = {}
    for source in (
        _listed(resources_json),
        _walk(parse_json(request_parameters), fields),
        _walk(parse_json(response_elements), fields),
    ):
        for item in source:
            found.setdefault(item, None)
            if len(found) >= MAX_PER_CALL:
                return list(found)
    return list(found)


def _keys_created(event_name: str, response: Any) -> list[str]:
    parsed = parse_json(response)
    if not isinstance(parsed, dict):
        return []
    path = {
        "CreateAccessKey": "accessKey.accessKeyId",
        "AssumeRole": "credentials.accessKeyId",
        "AssumeRoleWithWebIdentity": "credentials.accessKeyId",
        "AssumeRoleWithSAML": "credentials.accessKeyId",
        "GetSessionToken": "credentials.accessKeyId",
        "GetFederationToken": "credentials.accessKeyId",
    }.get(event_name)
    return as_strings(field_at(parsed, path)) if path else []


_PARTY_KIND = {"0.0.0.0/0": "network", "::/0": "network", "*": "anyone"}


def counterparties_of(event_name: str, response_elements: Any, effects: Sequence[Effect] = ()) -> list[Party]:
    """Who else one call involved: shared-with accounts, granted principals, created keys, opened networks."""
    found: dict[tuple[str, str], Party] = {}
    for effect in effects:
        for who in effect.counterparties:
            if who.isdigit() and len(who) == 12:
                kind = "account"
            elif who.startswith(("AKIA", "ASIA")):
                kind = "access key"
            else:
                kind = _PARTY_KIND.get(who, "principal")
            found.setdefault((kind, who), Party(kind=kind, id=who[:_MAX_ID], via=effect.kind))
    for key in _keys_created(event_name, response_elements):
        found.setdefault(("access key", key), Party(kind="access key", id=key[:_MAX_ID], via=event_name))
    return list(found.values())[:MAX_PER_CALL]


def merge(groups: Iterable[Iterable[Touched]], limit: int = 50, first: Iterable[str] = ()) -> list[tuple[Touched, int]]:
    """Resources of many calls: each with the number of calls that touched it.

    Resources whose id is in ``first`` (what the effects named) come first, then the most
    touched. The same id under two types is one resource (the first type named wins); a bare
    name that ends an ARN of the list (``org-trail`` and ``arn:…:trail/org-trail``) is the
    same resource: it is folded into the ARN.
    """
    counts: dict[Touched, int] = {}
    for group in groups:
        for item in dict.fromkeys(group):
            counts[item] = counts.get(item, 0) + 1
    by_id: dict[str, Touched] = {}
    for item in list(counts):  # one id named under two types (a field's and a service's) is one resource
        kept = by_id.setdefault(item.id, item)
        if kept is not item:
            counts[kept] = max(counts[kept], counts.pop(item))
    arns = [t for t in counts if t.id.startswith("arn:")]
    named = set(first)
    for item in [t for t in counts if not t.id.startswith("arn:")]:
        owner = next((a for a in arns if a.id.endswith((f"/{item.id}", f":{item.id}"))), None)
        if owner is not None:
            counts[owner] = max(counts[owner], counts.pop(item))
            if item.id in named:
                named.add(owner.id)

    def rank(kv: tuple[Touched, int]) -> tuple[bool, int, str, str]:
        return (kv[0].id not in named, -kv[1], kv[0].type, kv[0].id)

    return sorted(counts.items(), key=rank)[:limit]


__all__ = [
    "MAX_PER_CALL",
    "Party",
    "Touched",
    "asff_type",
    "counterparties_of",
    "load_fields",
    "merge",
    "resources_of",
]
