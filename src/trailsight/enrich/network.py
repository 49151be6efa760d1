"""What kind of network a call came from: ``ip_kind``.

CloudTrail's ``sourceIPAddress`` is an IPv4/IPv6 address, the host name of an AWS service
acting for a principal (``lambda.amazonaws.com``), or ``AWS Internal``. The kinds
(``trailsight.schema.IP_KINDS``):

``aws-service``  a service host name (``*.amazonaws.com``, ``*.amazonaws.com.cn``)
``internal``     ``AWS Internal``
``private``      RFC 1918, loopback, link-local, IPv6 unique-local and "this network"
                 addresses (seen through VPC endpoints and on-premises links). Carrier-grade
                 NAT (100.64.0.0/10) is *public* here: mobile carriers' customers reach AWS
                 from those addresses, and they are as informative as any other public one.
``aws``          an address of Amazon's networks: ASN 16509 / 14618, or inside a prefix of
                 the optional ``ip-ranges.json`` (setting ``[geo] aws_ip_ranges``)
``public``       any other address
``unknown``      not an address at all (garbage, empty, a host name of no AWS service)
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from collections.abc import Iterable
from pathlib import Path

import orjson

from trailsight.errors import ConfigError

#: Autonomous systems that belong to Amazon's cloud (AMAZON-02, AMAZON-AES).
AWS_ASNS = frozenset({16509, 14618})

_SERVICE_HOST = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$", re.IGNORECASE)

# Private ranges as integer intervals: a handful of comparisons per address.
_PRIVATE_V4 = tuple(
    (int(net.network_address), int(net.broadcast_address))
    for net in map(
        ipaddress.IPv4Network,
        ("0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"),
    )
)
_PRIVATE_V6 = tuple(
    (int(net.network_address), int(net.broadcast_address))
    for net in map(ipaddress.IPv6Network, ("::/127", "fc00::/7", "fe80::/10"))
)
_MAPPED_V4 = int(ipaddress.IPv6Address("::ffff:0:0"))
_LOW32 = (1 << 32) - 1

#: An address as (IP version, integer value).
IntAddress = tuple[int, int]


def parse_ip(value: str | None) -> IntAddress | None:
    """Return ``value`` as (4 or 6, integer) — IPv4-mapped IPv6 as IPv4 — or None if it is not an address."""
    if not value or len(value) > 64:
        return None
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, value), "big")
    except (OSError, ValueError):
        pass
    try:
        number = int.from_bytes(socket.inet_pton(socket.AF_INET6, value.split("%", 1)[0]), "big")
    except (OSError, ValueError):
        return None
    if number >> 32 == _MAPPED_V4 >> 32:
        return 4, number & _LOW32
    return 6, number


def format_ip(addr: IntAddress) -> str:
    """The canonical text of an (IP version, integer) address."""
    version, number = addr
    return str(ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number))


def is_private(addr: IntAddress) -> bool:
    """True for addresses that never appear on the public internet (see the module docstring)."""
    version, number = addr
    ranges = _PRIVATE_V4 if version == 4 else _PRIVATE_V6
    return any(low <= number <= high for low, high in ranges)


def prefixes(values: list[str]) -> list[str | None]:
    """The network of each public address: its /24 (IPv4) or /48 (IPv6); None for anything else.

    The unit the organisation's egress is learned in: an office or VPN concentrator keeps its
    addresses within one such block, a home line is one address of its ISP's.
    """
    out: list[str | None] = []
    for value in values:
        addr = parse_ip(value)
        if addr is None or is_private(addr):
            out.append(None)
        elif addr[0] == 4:
            out.append(format_ip((4, addr[1] & ~0xFF)) + "/24")
        else:
            out.append(format_ip((6, addr[1] & ~((1 << 80) - 1))) + "/48")
    return out


def non_ip_kind(value: str | None) -> str:
    """Kind of a ``sourceIPAddress`` that is not an address: aws-service, internal or unknown."""
    if not value:
        return "unknown"
    text = value.strip()
    if text.lower() == "aws internal":
        return "internal"
    if len(text) <= 253 and _SERVICE_HOST.match(text):
        return "aws-service"
    return "unknown"


class AwsRanges:
    """Amazon's published prefixes (``ip-ranges.json``) as sorted integer intervals."""

    def __init__(self, v4: Iterable[ipaddress.IPv4Network], v6: Iterable[ipaddress.IPv6Network]) -> None:
        """Build the interval tables from the given networks."""
        self._v4_start, self._v4_end = _merge((int(n.network_address), int(n.broadcast_address)) for n in v4)
        self._v6_start, self._v6_end = _merge((int(n.network_address), int(n.broadcast_address)) for n in v6)

    @classmethod
    def load(cls, path: Path) -> AwsRanges:
        """Read an ``ip-ranges.json`` (https://ip-ranges.amazonaws.com/ip-ranges.json)."""
        try:
            doc = orjson.loads(path.read_bytes())
            v4 = [ipaddress.IPv4Network(p["ip_prefix"]) for p in doc.get("prefixes", [])]
            v6 = [ipaddress.IPv6Network(p["ipv6_prefix"]) for p in doc.get("ipv6_prefixes", [])]
        except FileNotFoundError:
            raise ConfigError(f"[geo] aws_ip_ranges: {path}: file not found") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"[geo] aws_ip_ranges: {path}: not an AWS ip-ranges.json ({exc})") from None
        return cls(v4, v6)

    def contains(self, addr: IntAddress) -> bool:
        """True if ``addr`` lies in one of the prefixes."""
        version, key = addr
        starts, ends = (self._v4_start, self._v4_end) if version == 4 else (self._v6_start, self._v6_end)
        i = bisect.bisect_right(starts, key) - 1
        return i >= 0 and key <= ends[i]


def _merge(intervals: Iterable[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sort and merge overlapping intervals into (starts, ends) lists."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [m[0] for m in merged], [m[1] for m in merged]
