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
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import orjson

from trailsight.errors import ConfigError

#: Autonomous systems that belong to Amazon's cloud (AMAZON-02, AMAZON-AES).
AWS_ASNS = frozenset({16509, 14618})

_SERVICE_HOST = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$", re.IGNORECASE)

_PRIVATE_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in ("0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")
)
_PRIVATE_V6 = tuple(ipaddress.IPv6Network(n) for n in ("::1/128", "::/128", "fc00::/7", "fe80::/10"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: str | None) -> IPAddress | None:
    """Return ``value`` as an address (IPv4-mapped IPv6 unwrapped to IPv4), or None if it is not one."""
    if not value or len(value) > 64:
        return None
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_private(addr: IPAddress) -> bool:
    """True for addresses that never appear on the public internet (see the module docstring)."""
    if isinstance(addr, ipaddress.IPv4Address):
        return any(addr in net for net in _PRIVATE_V4)
    return any(addr in net for net in _PRIVATE_V6)


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
        v6_start, v6_end = _merge((int(n.network_address), int(n.broadcast_address)) for n in v6)
        self._v6_start: list[int] = v6_start.tolist()
        self._v6_end: list[int] = v6_end.tolist()

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

    def contains(self, addr: IPAddress) -> bool:
        """True if ``addr`` lies in one of the prefixes."""
        key = int(addr)
        if isinstance(addr, ipaddress.IPv4Address):
            i = int(np.searchsorted(self._v4_start, key, side="right")) - 1
            return i >= 0 and key <= int(self._v4_end[i])
        j = bisect.bisect_right(self._v6_start, key) - 1
        return j >= 0 and key <= self._v6_end[j]


def _merge(intervals: Iterable[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sort and merge overlapping intervals (object arrays hold IPv6's 128-bit ints)."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    big = any(end >= 2**63 for _, end in merged)
    dtype: type = object if big else np.int64
    starts: np.ndarray = np.array([m[0] for m in merged], dtype=dtype)
    ends: np.ndarray = np.array([m[1] for m in merged], dtype=dtype)
    return starts, ends
