"""A tiny MaxMind DB (format 2.0) writer for tests: one record answering for every address.

The search tree has a single node whose two records both point at the one data record, so any
lookup ends at the first bit. Enough for ``maxminddb`` (C extension and pure Python) to open and
answer, small enough to publish from a fake registry.
"""

from __future__ import annotations

from typing import Any

_STRING, _MAP, _UINT16, _UINT32, _UINT64, _ARRAY = 2, 7, 5, 6, 9, 11
_MARKER = b"\xab\xcd\xefMaxMind.com"


def _control(kind: int, size: int) -> bytes:
    assert size < 29
    if kind <= 7:
        return bytes([kind << 5 | size])
    return bytes([size, kind - 7])  # extended type


def _uint(kind: int, value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return _control(kind, len(raw)) + raw


def _encode(value: Any) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
        return _control(_STRING, len(raw)) + raw
    if isinstance(value, dict):
        return _control(_MAP, len(value)) + b"".join(_encode(k) + _encode(v) for k, v in value.items())
    if isinstance(value, list):
        return _control(_ARRAY, len(value)) + b"".join(_encode(v) for v in value)
    if isinstance(value, int):
        return _uint(_UINT32, value)
    raise TypeError(value)


def _metadata(node_count: int, ip_version: int) -> bytes:
    return (
        _control(_MAP, 9)
        + _encode("node_count")
        + _uint(_UINT32, node_count)
        + _encode("record_size")
        + _uint(_UINT16, 24)
        + _encode("ip_version")
        + _uint(_UINT16, ip_version)
        + _encode("database_type")
        + _encode("test-city")
        + _encode("languages")
        + _encode(["en"])
        + _encode("binary_format_major_version")
        + _uint(_UINT16, 2)
        + _encode("binary_format_minor_version")
        + _uint(_UINT16, 0)
        + _encode("build_epoch")
        + _uint(_UINT64, 1_700_000_000)
        + _encode("description")
        + _encode({"en": "trailsight test database"})
    )


def single_record_mmdb(record: dict[str, str], *, ip_version: int) -> bytes:
    """An .mmdb whose every address maps to ``record`` (string values)."""
    node_count = 1
    pointer = node_count + 16  # data offset 0
    tree = pointer.to_bytes(3, "big") * 2  # record size 24: left and right
    data = _encode(record)
    return tree + bytes(16) + data + _MARKER + _metadata(node_count, ip_version)


def two_record_mmdb(low: dict[str, str], high: dict[str, str]) -> bytes:
    """An IPv4 .mmdb answering ``low`` for 0.0.0.0–127.255.255.255 and ``high`` for the upper half."""
    node_count = 1
    first = _encode(low)
    left = (node_count + 16).to_bytes(3, "big")
    right = (node_count + 16 + len(first)).to_bytes(3, "big")
    return left + right + bytes(16) + first + _encode(high) + _MARKER + _metadata(node_count, 4)
