"""The class of network a call came from: the ``net_class`` enrichment column.

Each public source address gets one class, decided in this order:

1. **The organisation's own ranges** from the settings file (``[network] office / vpn / ci``,
   CIDR lists): ``office``, ``org-vpn`` and ``ci``.
2. **Where ``ip_kind`` already knows:** ``aws`` (Amazon's ASNs or published prefixes),
   ``aws-service``, ``internal``, ``private``; ``unknown`` for anything that is not an address.
3. **An AS number given a class outright:** ``[network] asn_classes`` from the settings file,
   then the ``asn`` rows of ``catalog/network_classes.csv`` (corrections, such as Google Fiber
   being home fibre whatever its name says).
4. **Address ranges of the iporigin package** (PyPI, MIT, built weekly from the providers' own
   published feeds and CC0 community lists, see its NOTICE): ``tor`` exits, consumer ``vpn``
   exits, ``hosting`` (clouds, VPS providers, CDNs, crawlers), and
5. **the organisation name** of DB-IP's ASN data matched against the ``org`` rows of the same
   CSV (VPS providers, VPN hosters, mobile carriers, consumer ISPs).

Between 4 and 5 the stronger class wins (``tor`` > ``vpn`` > ``hosting`` > ``mobile`` >
``residential``): iporigin lists DataCamp's ranges as a CDN, the rules know it hosts VPN exits.
A public address neither source knows is ``other``.

Learned classes (the organisation's egress: networks many of its principals use) depend on
history and are not part of this column: the detectors learn them as of each event from
``net_prefix`` (the source's /24 or /48) and the ``a_net_principals`` feature; see
:mod:`trailsight.detectors.unusual_network`.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from iporigin import _data as iporigin_data

from trailsight.config import Settings
from trailsight.enrich.network import IntAddress
from trailsight.errors import ConfigError

#: Values of ``net_class``.
NET_CLASSES = (
    "hosting",
    "vpn",
    "tor",
    "mobile",
    "residential",
    "aws",
    "aws-service",
    "internal",
    "private",
    "office",
    "org-vpn",
    "ci",
    "other",
    "unknown",
)

#: Classes whose addresses are rented machines or anonymisers: new to a person, they surprise.
RENTED = frozenset({"hosting", "vpn", "tor"})

#: Classes whose addresses geolocate to the provider or the exit, not to where the person is.
BADLY_LOCATED = frozenset({"hosting", "vpn", "tor", "mobile", "aws", "org-vpn", "ci"})

#: Classes whose addresses locate the caller well enough to measure travel between them.
PLACED = frozenset({"residential", "office", "other"})

#: Classes whose located calls the geo-velocity features keep: the placed ones, and the rented
#: ones (a detector decides whether a rented hop counts, from the person's habit).
TRAVEL_CLASSES = PLACED | RENTED

#: Principals of an account that called from a network (``net_prefix``) before, from which on the
#: network counts as the organisation's own egress (detectors' ``egress_principals``, profiles).
EGRESS_PRINCIPALS = 5

#: How each class reads in explanations and profiles.
LABELS: dict[str, str] = {
    "hosting": "hosting provider",
    "vpn": "commercial VPN",
    "tor": "Tor exit",
    "mobile": "mobile carrier",
    "residential": "home broadband",
    "aws": "AWS",
    "aws-service": "AWS service",
    "internal": "AWS internal",
    "private": "private network",
    "office": "office",
    "org-vpn": "the organisation's VPN",
    "ci": "CI runner",
    "other": "other network",
    "unknown": "unknown",
    "egress": "office egress",
}

#: ``[network]`` settings naming CIDR lists, and the class each gives.
RANGE_SETTINGS: dict[str, str] = {"office": "office", "vpn": "org-vpn", "ci": "ci"}
_RULE_CLASSES = frozenset({"hosting", "vpn", "tor", "mobile", "residential", "other"})
_STRENGTH = {"tor": 5, "vpn": 4, "hosting": 3, "mobile": 2, "residential": 1, "other": 0}
_IPORIGIN: dict[str, str] = {"tor": "tor", "vpn": "vpn", "hosting": "hosting", "cdn": "hosting", "bot": "hosting"}
_NETWORK_KEYS = frozenset({*RANGE_SETTINGS, "asn_classes"})


def label(net_class: str | None) -> str:
    """The words for ``net_class`` ("home broadband"), or the class itself when unknown."""
    return LABELS.get(net_class or "unknown", net_class or "unknown")


@dataclass(frozen=True)
class AsnRules:
    """``catalog/network_classes.csv``: classes by AS number, then by organisation-name pattern."""

    by_asn: Mapping[int, str]
    by_org: tuple[tuple[re.Pattern[str], str], ...]

    def classify(self, asn: int | None, org: str | None) -> str | None:
        """The class the name rules give (None when no rule matches); see :attr:`by_asn` first."""
        if org:
            for pattern, cls in self.by_org:
                if pattern.search(org):
                    return cls
        return None


@cache
def asn_rules() -> AsnRules:
    """The packaged rules (read once)."""
    text = files("trailsight.enrich.catalog").joinpath("network_classes.csv").read_text(encoding="utf-8")
    return parse_rules(text.splitlines(), "network_classes.csv")


def parse_rules(lines: Iterable[str], where: str) -> AsnRules:
    """Parse rule rows ``match,pattern,class,note`` (``#`` lines are comments)."""
    by_asn: dict[int, str] = {}
    by_org: list[tuple[re.Pattern[str], str]] = []
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    for n, row in enumerate(reader, start=2):
        kind, pattern, cls = row.get("match"), row.get("pattern") or "", row.get("class")
        if cls not in _RULE_CLASSES:
            raise ConfigError(f"{where}: row {n}: class {cls!r} is not one of {', '.join(sorted(_RULE_CLASSES))}")
        if kind == "asn" and pattern.isdigit():
            by_asn[int(pattern)] = cls
        elif kind == "org" and pattern:
            try:
                by_org.append((re.compile(pattern, re.IGNORECASE), cls))
            except re.error as exc:
                raise ConfigError(f"{where}: row {n}: bad pattern ({exc})") from None
        else:
            raise ConfigError(f"{where}: row {n}: match must be asn (a number) or org (a pattern)")
    return AsnRules(by_asn, tuple(by_org))


@dataclass(frozen=True, kw_only=True)
class NetworkOptions:
    """The ``[network]`` section: the organisation's own ranges and per-ASN classes."""

    ranges: tuple[tuple[int, int, int, str], ...] = ()  # (version, first, last, class)
    asn_classes: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings | None) -> NetworkOptions:
        """Parse and check ``[network]``; a bad key or value is a ConfigError naming it."""
        settings = settings or Settings()
        section = settings.section("network")
        where = f"{settings.path}: [network]" if settings.path else "[network]"
        unknown = sorted(set(section) - _NETWORK_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(_NETWORK_KEYS))})")
        ranges: list[tuple[int, int, int, str]] = []
        for key, cls_name in RANGE_SETTINGS.items():
            value = section.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} {key}: must be a list of CIDR strings")
            for text in value:
                try:
                    net = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    raise ConfigError(f"{where} {key}: {text!r} is not a CIDR range") from None
                ranges.append((net.version, int(net.network_address), int(net.broadcast_address), cls_name))
        table = section.get("asn_classes", {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} asn_classes: must be a table of AS number = class")
        asn_classes: dict[int, str] = {}
        for key, value in table.items():
            number = str(key).upper().removeprefix("AS")
            if not number.isdigit() or value not in NET_CLASSES:
                raise ConfigError(
                    f"{where} asn_classes: {key} = {value!r}: want an AS number and one of {', '.join(NET_CLASSES)}"
                )
            asn_classes[int(number)] = str(value)
        return cls(ranges=tuple(ranges), asn_classes=asn_classes)


class NetworkClassifier:
    """Gives each source address its ``net_class`` (see the module docstring for the order)."""

    def __init__(self, options: NetworkOptions | None = None, rules: AsnRules | None = None) -> None:
        """Use ``options`` (the settings' own ranges) and ``rules`` (default: the packaged CSV)."""
        self.options = options or NetworkOptions()
        self.rules = rules or asn_rules()
        self._dataset: Any = iporigin_data.dataset()

    def own_range(self, addr: IntAddress) -> str | None:
        """The class of the settings' range holding ``addr``, if any."""
        version, number = addr
        for v, first, last, cls in self.options.ranges:
            if v == version and first <= number <= last:
                return cls
        return None

    def classify(self, ip_kind: str, addr: IntAddress | None, asn: int | None, org: str | None) -> str:
        """The class of one source address, given what enrichment already found."""
        if addr is not None:
            own = self.own_range(addr)
            if own is not None:
                return own
        if ip_kind != "public":
            return ip_kind if ip_kind in NET_CLASSES else "unknown"
        if addr is None:
            return "unknown"
        if asn is not None and asn in self.options.asn_classes:
            return self.options.asn_classes[asn]
        if asn is not None and asn in self.rules.by_asn:
            return self.rules.by_asn[asn]
        # Documentation and other special-purpose blocks are in no provider's hands, whatever a
        # list says (iporigin's places 198.51.100.0/24 at Vultr).
        found = self._dataset.find(addr[1], addr[0]) if _is_global(addr) else None
        by_range = _IPORIGIN.get(found[1]) if found is not None else None
        by_rule = self.rules.classify(asn, org)
        candidates = [c for c in (by_range, by_rule) if c is not None]
        return max(candidates, key=_STRENGTH.__getitem__) if candidates else "other"


def _is_global(addr: IntAddress) -> bool:
    version, number = addr
    ip = ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number)
    return ip.is_global
