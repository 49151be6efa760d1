"""The API catalog: what each CloudTrail API means to an attacker.

``apis.csv`` beside this module lists, per ``event_source,event_name``, the service, the
MITRE ATT&CK tactic (a key of :data:`trailsight.finding.TACTICS`) and technique id an
attacker uses the call for, a risk weight in [0, 1] (``StopLogging`` weighs more than
``DescribeInstances``) and whether the call only reads. An empty tactic means the call has
no attacker use worth naming (``CreateLogStream``, ``SendHeartbeat``).

APIs not in the file get a verb-prefix fallback (:func:`fallback`): reads are low-risk
Discovery, writes to IAM are Persistence / Privilege Escalation, deletes and stops on logging
and security services are Defense Evasion, deletes elsewhere are Impact.

Lambda's versioned event names (``UpdateFunctionCode20150331v2``) are looked up without
their date suffix.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from trailsight.errors import ConfigError
from trailsight.finding import TACTICS

CATALOG_FILE = "apis.csv"
CATALOG_COLUMNS = ("event_source", "event_name", "service", "tactic", "technique", "risk", "read_only")

_VERSION_SUFFIX = re.compile(r"20\d{6}(?:v\d+)?$")


@dataclass(frozen=True, kw_only=True)
class ApiInfo:
    """What an API means: service, ATT&CK tactic and technique, risk weight, read-only."""

    service: str
    tactic: str | None
    technique: str | None
    risk: float
    read_only: bool
    known: bool = True  # False when the entry comes from the verb-prefix fallback


def service_of(event_source: str | None) -> str:
    """``iam.amazonaws.com`` → ``iam`` (the ``service`` column)."""
    if not event_source:
        return ""
    for suffix in (".amazonaws.com.cn", ".amazonaws.com"):
        if event_source.endswith(suffix):
            return event_source[: -len(suffix)]
    return event_source


def base_event_name(event_name: str) -> str:
    """Strip Lambda's API-version suffix: ``CreateFunction20150331`` → ``CreateFunction``."""
    stripped = _VERSION_SUFFIX.sub("", event_name)
    return stripped or event_name


@cache
def load_catalog() -> dict[tuple[str, str], ApiInfo]:
    """Read ``apis.csv`` once; keys are (event_source, event_name)."""
    text = resources.files(__package__).joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    entries: dict[tuple[str, str], ApiInfo] = {}
    reader = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    if tuple(reader.fieldnames or ()) != CATALOG_COLUMNS:
        raise ConfigError(f"{CATALOG_FILE}: header must be {','.join(CATALOG_COLUMNS)}")
    for lineno, row in enumerate(reader, start=2):
        where = f"{CATALOG_FILE}:{lineno}"
        tactic = row["tactic"] or None
        if tactic is not None and tactic not in TACTICS:
            raise ConfigError(f"{where}: unknown tactic {tactic!r}")
        try:
            risk = float(row["risk"])
        except ValueError:
            raise ConfigError(f"{where}: risk {row['risk']!r} is not a number") from None
        if not 0.0 <= risk <= 1.0:
            raise ConfigError(f"{where}: risk {risk} outside 0..1")
        if row["read_only"] not in ("true", "false"):
            raise ConfigError(f"{where}: read_only must be true or false")
        key = (row["event_source"], row["event_name"])
        if key in entries:
            raise ConfigError(f"{where}: duplicate entry {key[0]}:{key[1]}")
        entries[key] = ApiInfo(
            service=row["service"] or service_of(row["event_source"]),
            tactic=tactic,
            technique=row["technique"] or None,
            risk=risk,
            read_only=row["read_only"] == "true",
        )
    return entries


@lru_cache(maxsize=65536)
def lookup(event_source: str | None, event_name: str | None) -> ApiInfo:
    """Return what ``event_source:event_name`` means, from the catalog or the verb-prefix fallback."""
    source = event_source or ""
    name = event_name or ""
    catalog = load_catalog()
    info = catalog.get((source, name))
    if info is None:
        base = base_event_name(name)
        info = catalog.get((source, base)) if base != name else None
    return info if info is not None else fallback(source, base_event_name(name))


# Services whose job is to log or to detect: turning them off is Defense Evasion.
_LOGGING_SERVICES = frozenset(
    {"cloudtrail", "logs", "config", "route53resolver", "firehose", "s3"}  # s3: access logging
)
_SECURITY_SERVICES = frozenset(
    {
        "guardduty",
        "securityhub",
        "macie",
        "macie2",
        "inspector",
        "inspector2",
        "access-analyzer",
        "detective",
        "waf",
        "wafv2",
        "waf-regional",
        "network-firewall",
        "shield",
        "fms",
        "monitoring",
        "securitylake",
        "cloudtrail",
        "config",
    }
)
_IDENTITY_SERVICES = frozenset(
    {"iam", "sts", "sso", "sso-directory", "identitystore", "rolesanywhere", "organizations"}
)

_READ_VERBS = (
    "Describe",
    "List",
    "Get",
    "Head",
    "Search",
    "Lookup",
    "BatchGet",
    "Scan",
    "Query",
    "Select",
    "Check",
    "Validate",
    "Estimate",
    "Preview",
    "Test",
    "Simulate",
    "View",
    "Download",
    "Generate",
)
_REMOVE_VERBS = ("Delete", "Remove", "Stop", "Disable", "Deregister", "Disassociate", "Detach", "Terminate", "Purge")
_CREATE_VERBS = ("Create", "Upload", "Add", "Enable", "Register", "Import", "Tag")
_CHANGE_VERBS = ("Attach", "Put", "Update", "Set", "Associate", "Modify", "Change", "Replace")


def fallback(event_source: str, event_name: str) -> ApiInfo:
    """Guess an unlisted API's meaning from its verb and service (``known`` is False)."""
    service = service_of(event_source)
    verb_read = event_name.startswith(_READ_VERBS)
    if verb_read:
        if service in _IDENTITY_SERVICES:
            technique = "T1087.004"
        elif service in _SECURITY_SERVICES:
            technique = "T1518.001"
        else:
            technique = "T1580"
        return ApiInfo(service=service, tactic="Discovery", technique=technique, risk=0.1, read_only=True, known=False)
    if service in _IDENTITY_SERVICES:
        if event_name.startswith(_CREATE_VERBS):
            return ApiInfo(
                service=service, tactic="Persistence", technique="T1098", risk=0.45, read_only=False, known=False
            )
        if event_name.startswith(_CHANGE_VERBS):
            return ApiInfo(
                service=service,
                tactic="PrivilegeEscalation",
                technique="T1098.003",
                risk=0.45,
                read_only=False,
                known=False,
            )
        if event_name.startswith(_REMOVE_VERBS):
            return ApiInfo(service=service, tactic="Impact", technique="T1531", risk=0.35, read_only=False, known=False)
    if service in _LOGGING_SERVICES | _SECURITY_SERVICES:
        technique = "T1562.008" if service in _LOGGING_SERVICES else "T1562.001"
        if event_name.startswith(_REMOVE_VERBS):
            return ApiInfo(
                service=service, tactic="DefenseEvasion", technique=technique, risk=0.6, read_only=False, known=False
            )
        if event_name.startswith(_CHANGE_VERBS) and service != "s3":
            return ApiInfo(
                service=service, tactic="DefenseEvasion", technique=technique, risk=0.35, read_only=False, known=False
            )
    if event_name.startswith(("Delete", "Terminate", "Purge", "Destroy")):
        return ApiInfo(service=service, tactic="Impact", technique="T1485", risk=0.35, read_only=False, known=False)
    if event_name.startswith(("Stop", "Disable", "Reboot")):
        return ApiInfo(service=service, tactic="Impact", technique="T1489", risk=0.25, read_only=False, known=False)
    return ApiInfo(service=service, tactic=None, technique=None, risk=0.15, read_only=False, known=False)


__all__ = ["ApiInfo", "base_event_name", "fallback", "load_catalog", "lookup", "service_of"]
