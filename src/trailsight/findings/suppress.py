"""Suppression rules and analyst feedback: what an analyst has said should not be raised again.

Two sources of rules, one matcher:

* a TOML rules file of ``[[suppress]]`` tables (see docs/suppression.md)::

      [[suppress]]
      principal = "arn:aws:iam::111122223333:role/backup"   # glob; also matches the actor or the name
      api = ["CreateSnapshot", "Describe*"]                 # globs
      cidr = "10.0.0.0/8"                                   # ip / cidr / asn: where from
      user_agent = "aws-sdk-go*"
      account = "111122223333"
      reason = "nightly backup job"
      expires = 2026-12-31                                  # optional (a date means the end of that day, UTC)

* feedback: a finding the analyst dismissed as benign becomes a rule for that principal with the
  finding's APIs and networks (:func:`feedback_rules`).

A rule matches a finding when **every** field it sets matches, and a field with several values in
the finding matches only when **all** of them do: a rule for ``api = "Describe*"`` does not hide a
finding that also holds ``CreateAccessKey``, and a rule for ``cidr = "10.0.0.0/8"`` does not hide one
that also came from a public address. Matching findings are kept, with status ``Suppressed`` and a
last explanation line naming the rule; they are not dropped.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import duckdb

from trailsight.errors import ConfigError
from trailsight.finding import Finding
from trailsight.store.findings import connect_state, feedback_for, finding_from_dict, get_finding, state_path

__all__ = [
    "SuppressionRule",
    "apply_suppressions",
    "feedback_rules",
    "finding_apis",
    "load_rules",
    "rule_from_finding",
]

_FIELDS = {"principal", "api", "ip", "cidr", "asn", "user_agent", "account", "type", "reason", "expires"}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class SuppressionRule:
    """One suppression: the fields it matches on (each a tuple of alternatives), why, and until when."""

    principal: tuple[str, ...] = ()
    api: tuple[str, ...] = ()
    networks: tuple[IpNetwork, ...] = ()  # ip and cidr
    asn: tuple[int, ...] = ()
    user_agent: tuple[str, ...] = ()
    account: tuple[str, ...] = ()
    # Globs on the finding type. Only a rule that names it matches an attack story
    # (``type = "AttackSequence:*"``): suppressing a principal never hides its stories.
    finding_type: tuple[str, ...] = ()
    reason: str = ""
    expires: datetime | None = None
    source: str = ""  # "rules.toml#2" or "feedback:<finding id>"
    # A verdict's rule (rule_from_finding): ``principal`` is compared with the finding's actor only,
    # and only the finding's *unusual* APIs must be among ``api``.
    from_feedback: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def active(self, now: datetime) -> bool:
        """Whether the rule has not expired at ``now``."""
        return self.expires is None or now < self.expires

    def matches(self, finding: Finding) -> bool:
        """Whether every field this rule sets matches the finding (all of the finding's values)."""
        if self.finding_type:
            if not any(fnmatch.fnmatchcase(finding.finding_type, p) for p in self.finding_type):
                return False
        elif finding.is_story:
            return False
        if self.from_feedback:
            # That actor exactly: a verdict on a finding whose actor is a shared SSO role (several
            # people in one burst) must not hide one person's findings on that role.
            if not any(fnmatch.fnmatchcase(finding.actor or finding.principal, p) for p in self.principal):
                return False
        elif self.principal and not any(_principal_matches(p, finding) for p in self.principal):
            return False
        if self.account and finding.account_id not in self.account:
            return False
        if self.api:
            if self.from_feedback and finding.unusual:
                # Described: what is new in the finding must be among the APIs the verdict covered;
                # nothing new about its APIs (a traveller's everyday calls) passes this field.
                apis = _unusual_apis(finding)
                if not all(any(fnmatch.fnmatchcase(a, pat) for pat in self.api) for a in apis):
                    return False
            else:
                apis = finding_apis(finding)
                if not apis or not all(any(fnmatch.fnmatchcase(a, pat) for pat in self.api) for a in apis):
                    return False
        if self.networks or self.asn:
            nets = finding.networks
            if not nets or not all(self._network_matches(n.ip, n.asn) for n in nets):
                return False
        if self.user_agent:
            agents = finding.user_agents
            if not agents or not all(any(fnmatch.fnmatchcase(ua, pat) for pat in self.user_agent) for ua in agents):
                return False
        return True

    def _network_matches(self, ip: str, asn: int | None) -> bool:
        if asn is not None and asn in self.asn:
            return True
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False  # "AWS Internal", service hosts: only an ASN or no network field matches them
        return any(address.version == net.version and address in net for net in self.networks)

    def describe(self) -> str:
        """A short human form: ``rules.toml#2 (nightly backup job)``."""
        return f"{self.source} ({self.reason})" if self.reason else self.source


def _principal_matches(pattern: str, finding: Finding) -> bool:
    for value in (finding.principal, finding.actor):
        if fnmatch.fnmatchcase(value, pattern):
            return True
        name = value.rstrip("/").rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _unusual_apis(finding: Finding) -> list[str]:
    return list(dict.fromkeys(u.value for u in finding.unusual if u.attribute == "api"))


def finding_apis(finding: Finding) -> list[str]:
    """The APIs a finding is about: its anomalous APIs, unusual API values, else its timeline's."""
    apis = [a.event_name for a in finding.anomalous_apis]
    apis += [u.value for u in finding.unusual if u.attribute == "api"]
    if not apis:
        apis = [t.event_name for t in finding.timeline if t.unusual] or [t.event_name for t in finding.timeline]
    return list(dict.fromkeys(apis))


# --------------------------------------------------------------------------- rules file


def load_rules(path: Path) -> list[SuppressionRule]:
    """Read a TOML rules file of ``[[suppress]]`` tables; a bad rule is a ConfigError naming it."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: suppression rules file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"suppress"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected [[suppress]]")
    tables = data.get("suppress", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: 'suppress' must be an array of tables ([[suppress]])")
    return [_parse_rule(t, f"{path}#{i}") for i, t in enumerate(tables, start=1)]


def _parse_rule(table: Any, where: str) -> SuppressionRule:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each [[suppress]] entry must be a table")
    unknown = set(table) - _FIELDS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_FIELDS))})"
        )
    if not (set(table) - {"reason", "expires"}):
        raise ConfigError(
            f"{where}: a rule needs at least one of principal, api, ip, cidr, asn, user_agent, account, type"
        )
    networks: list[IpNetwork] = []
    for key in ("ip", "cidr"):
        for value in _strings(table, key, where):
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise ConfigError(f"{where}: {key} {value!r} is not an IP address or CIDR block") from None
    asns: list[int] = []
    for value in _values(table, "asn"):
        text = str(value).upper().removeprefix("AS")
        if not text.isdigit():
            raise ConfigError(f"{where}: asn {value!r} is not an AS number")
        asns.append(int(text))
    reason = table.get("reason", "")
    if not isinstance(reason, str):
        raise ConfigError(f"{where}: reason must be a string")
    return SuppressionRule(
        principal=tuple(_strings(table, "principal", where)),
        api=tuple(_strings(table, "api", where)),
        networks=tuple(networks),
        asn=tuple(asns),
        user_agent=tuple(_strings(table, "user_agent", where)),
        account=tuple(_strings(table, "account", where)),
        finding_type=tuple(_strings(table, "type", where)),
        reason=reason,
        expires=_expiry(table.get("expires"), where),
        source=where,
    )


def _values(table: dict[str, Any], key: str) -> list[Any]:
    value = table.get(key)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _strings(table: dict[str, Any], key: str, where: str) -> list[str]:
    values = _values(table, key)
    for value in values:
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            raise ConfigError(f"{where}: {key} must be a non-empty string or a list of them")
    return [str(v) for v in values]


def _expiry(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        # A date means the rule holds through that whole day (UTC).
        return datetime.combine(value, time.max, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _expiry(datetime.fromisoformat(value.replace("Z", "+00:00")), where)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expires {value!r} is not a TOML date or date-time")


# --------------------------------------------------------------------------- applying


def apply_suppressions(
    findings: Sequence[Finding], rules: Iterable[SuppressionRule], now: datetime | None = None
) -> list[Finding]:
    """Return the findings with every Open one that an active rule matches set to Suppressed.

    Nothing is dropped. The first matching rule is named in a last explanation line.
    Findings an analyst already triaged keep their status. ``now`` is when expiry is judged;
    None (what the pipeline passes) judges each finding at its ``last_seen``, when the behaviour
    happened, so a re-run over last month's logs meets the rules as they stood then.
    """
    rules = list(rules)
    fixed = [r for r in rules if r.active(now)] if now is not None else None
    result: list[Finding] = []
    for finding in findings:
        active = fixed if fixed is not None else [r for r in rules if r.active(finding.last_seen)]
        rule = next((r for r in active if r.matches(finding)), None) if finding.status == "Open" else None
        if rule is None:
            result.append(finding)
            continue
        note = f"Suppressed by {rule.describe()}."
        result.append(replace(finding, status="Suppressed", explanation=[*finding.explanation, note]))
    return result


def rule_from_finding(finding: Finding, reason: str = "") -> SuppressionRule:
    """The rule an analyst's "benign" verdict on ``finding`` stands for.

    Same actor (exact ARN: the principal itself, or the person behind an SSO role), same account,
    the finding's APIs, and its networks (by ASN where known, else by address): a later finding of
    that actor from those networks whose *unusual* APIs are all among this finding's APIs is
    suppressed; a new unusual API or a new network is raised. Only the unusual APIs are compared
    because a finding's API list holds every call of its unusual events: a traveller's finding
    lists the dozens of everyday APIs called from the hotel, and the next session calls a few
    others, which is the same pattern. A later finding without describe's unusual attributes is
    compared on all its APIs, as a rules-file ``api`` is.
    """
    networks: list[IpNetwork] = []
    asns: list[int] = []
    for net in finding.networks:
        if net.asn is not None:
            asns.append(net.asn)
            continue
        try:
            networks.append(ipaddress.ip_network(net.ip))
        except ValueError:
            continue
    if finding.is_story:
        # A story's verdict covers that kind of story of that actor, whatever its steps were.
        return SuppressionRule(
            principal=(_glob_escape(finding.actor or finding.principal),),
            account=(finding.account_id,),
            finding_type=(_glob_escape(finding.finding_type),),
            reason=f"dismissed as benign{': ' + reason if reason else ''}",
            source=f"feedback:{finding.id}",
            from_feedback=True,
        )
    apis = finding_apis(finding)
    # The actor, not the role: one person's verdict on an SSO permission-set role is not everyone's.
    return SuppressionRule(
        principal=(_glob_escape(finding.actor or finding.principal),),
        account=(finding.account_id,),
        api=tuple(_glob_escape(a) for a in apis),
        networks=tuple(dict.fromkeys(networks)),
        asn=tuple(dict.fromkeys(asns)),
        reason=f"dismissed as benign{': ' + reason if reason else ''}",
        source=f"feedback:{finding.id}",
        from_feedback=True,
    )


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def feedback_rules(path: Any) -> list[SuppressionRule]:
    """Rules from analyst feedback in a store: one per finding whose latest verdict is Dismissed.

    ``path`` is a store folder, its ``state.duckdb``, a StoreLayout or an open DuckDB connection.
    A finding later reopened or marked Malicious no longer suppresses anything.
    """
    if not isinstance(path, duckdb.DuckDBPyConnection):
        if not state_path(path).is_file():
            return []
        with connect_state(path, read_only=True) as con:
            return feedback_rules(con)
    latest: dict[str, dict[str, Any]] = {}
    for row in feedback_for(path):
        latest[row["finding_id"]] = row
    rules: list[SuppressionRule] = []
    for fid, row in latest.items():
        if str(row["action"]).lower() != "dismissed":
            continue
        body = get_finding(path, fid)
        if body is None:
            continue
        rules.append(rule_from_finding(finding_from_dict(body), str(row.get("reason") or "")))
    return rules
