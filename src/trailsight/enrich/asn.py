"""Autonomous system (number and organisation) of an IP address.

The default source is ip-location-db's ASN tables (``asn-ipv4-num.csv`` / ``asn-ipv6-num.csv``,
rows ``start,end,asn,organisation`` with the addresses as integers; CC-BY-4.0), fetched by
``make data``. Parsing 400k CSV rows takes a moment, so the first load writes a compact
``.npz`` cache beside the CSV (or under ``~/.cache/trailsight`` when that folder is read-only)
and later loads read the arrays straight from it. Look-ups are binary searches over the sorted
range starts.

Instead of the CSVs a user can point ``[geo] asn_mmdb`` at a MaxMind GeoLite2-ASN (or
compatible) ``.mmdb``.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import maxminddb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from trailsight.errors import ConfigError

_CACHE_VERSION = 1
_LOW64 = (1 << 64) - 1

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AsnResult = tuple[int | None, str | None]


class AsnSource(Protocol):
    """Anything that maps an address to (ASN, organisation)."""

    def lookup(self, addr: IPAddress) -> AsnResult:
        """Return (asn, organisation) for ``addr``, (None, None) when unknown."""
        ...


@dataclass
class _RangeTable:
    """Sorted, non-overlapping address ranges with an ASN and an organisation index each."""

    start: np.ndarray  # int64 (IPv4) / uint64 pairs (IPv6, see hi/lo)
    end: np.ndarray
    asn: np.ndarray  # int64
    org: np.ndarray  # int32 index into orgs
    orgs: list[str]


class AsnTable:
    """ASN look-up over ip-location-db's IPv4 and IPv6 range tables."""

    def __init__(self, v4: _RangeTable | None, v6: _RangeTable | None) -> None:
        """Wrap already-loaded tables (use :meth:`load`)."""
        self._v4 = v4
        self._v6 = v6
        self._v6_starts: list[int] | None = None
        self._v6_ends: list[int] | None = None

    @classmethod
    def load(cls, v4_csv: Path | None, v6_csv: Path | None) -> AsnTable:
        """Load the tables (through their ``.npz`` cache); a None or missing path leaves that family empty."""
        v4 = _load_table(v4_csv, v6=False) if v4_csv is not None and v4_csv.is_file() else None
        v6 = _load_table(v6_csv, v6=True) if v6_csv is not None and v6_csv.is_file() else None
        return cls(v4, v6)

    @property
    def empty(self) -> bool:
        """True when neither table could be loaded."""
        return self._v4 is None and self._v6 is None

    def lookup(self, addr: IPAddress) -> AsnResult:
        """Return (asn, organisation) of the range holding ``addr``, or (None, None)."""
        key = int(addr)
        if isinstance(addr, ipaddress.IPv4Address):
            table = self._v4
            if table is None:
                return None, None
            i = int(np.searchsorted(table.start, key, side="right")) - 1
            if i < 0 or key > int(table.end[i]):
                return None, None
        else:
            table = self._v6
            if table is None:
                return None, None
            starts, ends = self._v6_lists(table)
            i = bisect.bisect_right(starts, key) - 1
            if i < 0 or key > ends[i]:
                return None, None
        asn = int(table.asn[i])
        org = table.orgs[int(table.org[i])] or None
        return (asn if asn > 0 else None), org

    def _v6_lists(self, table: _RangeTable) -> tuple[list[int], list[int]]:
        # IPv6 addresses do not fit in int64: keep them as Python ints, built once on first use.
        if self._v6_starts is None or self._v6_ends is None:
            self._v6_starts = _join128(table.start)
            self._v6_ends = _join128(table.end)
        return self._v6_starts, self._v6_ends


class MmdbAsn:
    """ASN look-up in a MaxMind GeoLite2-ASN style ``.mmdb``."""

    def __init__(self, path: Path) -> None:
        """Open ``path`` (a ConfigError naming the setting when it cannot be read)."""
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(f"[geo] asn_mmdb: {path}: cannot open ({exc})") from None

    def lookup(self, addr: IPAddress) -> AsnResult:
        """Return (asn, organisation) from the database record, or (None, None)."""
        try:
            rec: Any = self._reader.get(addr)
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None, None
        if not isinstance(rec, dict):
            return None, None
        asn = rec.get("autonomous_system_number")
        org = rec.get("autonomous_system_organization")
        return (int(asn) if isinstance(asn, int) else None), (str(org) if org else None)


def _join128(pairs: np.ndarray) -> list[int]:
    hi = pairs[:, 0].tolist()
    lo = pairs[:, 1].tolist()
    return [(h << 64) | l_ for h, l_ in zip(hi, lo, strict=True)]


def _cache_paths(csv: Path) -> list[Path]:
    name = csv.with_suffix(".npz").name
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trailsight"
    return [csv.with_suffix(".npz"), home / name]


def _load_table(csv: Path, *, v6: bool) -> _RangeTable:
    stat = csv.stat()
    stamp = np.array([_CACHE_VERSION, stat.st_size, stat.st_mtime_ns], dtype=np.int64)
    for cache in _cache_paths(csv):
        table = _read_cache(cache, stamp)
        if table is not None:
            return table
    table = _parse_csv(csv, v6=v6)
    for cache in _cache_paths(csv):
        if _write_cache(cache, stamp, table):
            break
    return table


def _read_cache(path: Path, stamp: np.ndarray) -> _RangeTable | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not np.array_equal(npz["stamp"], stamp):
                return None
            orgs = bytes(npz["orgs"]).decode("utf-8").split("\n")
            return _RangeTable(npz["start"], npz["end"], npz["asn"], npz["org"], orgs)
    except (OSError, KeyError, ValueError):
        return None


def _write_cache(path: Path, stamp: np.ndarray, table: _RangeTable) -> bool:
    orgs = np.frombuffer("\n".join(table.orgs).encode("utf-8"), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            np.savez(fh, stamp=stamp, start=table.start, end=table.end, asn=table.asn, org=table.org, orgs=orgs)
        tmp.replace(path)  # atomic: readers see the old cache or the new one
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def _parse_csv(csv: Path, *, v6: bool) -> _RangeTable:
    names = ["start", "end", "asn", "org"]
    types: dict[str, pa.DataType] = {"start": pa.string(), "end": pa.string()} if v6 else {}
    types |= {"asn": pa.int64(), "org": pa.string()}
    try:
        table = pacsv.read_csv(
            csv,
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigError(f"{csv}: not an ip-location-db ASN table (start,end,asn,org): {exc}") from None
    org_col = table.column("org").combine_chunks().dictionary_encode()
    orgs = [str(o).replace("\n", " ") for o in org_col.dictionary.to_pylist()]
    org_idx = org_col.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    asn = table.column("asn").to_numpy().astype(np.int64)
    if v6:
        start = _split128(table.column("start").to_pylist())
        end = _split128(table.column("end").to_pylist())
        order = np.lexsort((start[:, 1], start[:, 0]))
    else:
        start = table.column("start").to_numpy().astype(np.int64)
        end = table.column("end").to_numpy().astype(np.int64)
        order = np.argsort(start, kind="stable")
    return _RangeTable(start[order], end[order], asn[order], org_idx[order], orgs)


def _split128(values: list[str]) -> np.ndarray:
    ints = [int(v) for v in values]
    return np.array([(i >> 64, i & _LOW64) for i in ints], dtype=np.uint64).reshape(-1, 2)
