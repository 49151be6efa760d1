"""Autonomous system (number and organisation) of an IP address.

The default source is ip-location-db's ASN tables (``asn-ipv4-num.csv`` / ``asn-ipv6-num.csv``,
rows ``start,end,asn,organisation`` with the addresses as integers; CC-BY-4.0), fetched by
``trailsight data fetch``. Parsing 400k CSV rows takes a moment, so the first load writes a compact
``.npz`` cache beside the CSV (or under ``~/.cache/trailsight`` when that folder is read-only)
and later loads read the arrays straight from it. Look-ups are binary searches over the sorted
range starts.

Instead of the CSVs a user can point ``[geo] asn_mmdb`` at a MaxMind GeoLite2-ASN (or
compatible) ``.mmdb``.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import maxminddb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from trailsight.enrich.network import IntAddress, format_ip
from trailsight.errors import ConfigError

_CACHE_VERSION = 1
_LOW64 = (1 << 64) - 1

AsnResult = tuple[int | None, str | None]


class AsnSource(Protocol):
    """Anything that maps an address to (ASN, organisation)."""

    def lookup(self, addr: IntAddress) -> AsnResult:
        """Return (asn, organisation) for ``addr``, (None, None) when unknown."""
        ...

    def lookup_many(self, addrs: Sequence[IntAddress]) -> list[AsnResult]:
        """:meth:`lookup` for each address."""
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
        self._tables = {4: v4, 6: v6}
        self._bounds6: tuple[list[int], list[int]] | None = None

    @classmethod
    def load(cls, v4_csv: Path | None, v6_csv: Path | None) -> AsnTable:
        """Load the tables (through their ``.npz`` cache); a None or missing path leaves that family empty."""
        v4 = _load_table(v4_csv, v6=False) if v4_csv is not None and v4_csv.is_file() else None
        v6 = _load_table(v6_csv, v6=True) if v6_csv is not None and v6_csv.is_file() else None
        return cls(v4, v6)

    @property
    def empty(self) -> bool:
        """True when neither table could be loaded."""
        return all(t is None for t in self._tables.values())

    def lookup(self, addr: IntAddress) -> AsnResult:
        """Return (asn, organisation) of the range holding ``addr``, or (None, None)."""
        return self.lookup_many([addr])[0]

    def lookup_many(self, addrs: Sequence[IntAddress]) -> list[AsnResult]:
        """(asn, organisation) per address; IPv4 in one vectorised binary search."""
        results: list[AsnResult] = [(None, None)] * len(addrs)
        v4 = self._tables[4]
        v4_pos = [i for i, a in enumerate(addrs) if a[0] == 4]
        if v4 is not None and v4_pos:
            keys = np.fromiter((addrs[i][1] for i in v4_pos), dtype=np.int64, count=len(v4_pos))
            rows = np.searchsorted(v4.start, keys, side="right") - 1
            hit = (rows >= 0) & (keys <= v4.end[np.maximum(rows, 0)])
            for pos, row, ok in zip(v4_pos, rows.tolist(), hit.tolist(), strict=True):
                if ok:
                    results[pos] = self._result(v4, row)
        v6 = self._tables[6]
        if v6 is not None:
            for pos, (version, key) in enumerate(addrs):
                if version == 6:
                    starts, ends = self._v6_bounds(v6)
                    row = bisect.bisect_right(starts, key) - 1
                    if row >= 0 and key <= ends[row]:
                        results[pos] = self._result(v6, row)
        return results

    @staticmethod
    def _result(table: _RangeTable, row: int) -> AsnResult:
        asn = int(table.asn[row])
        org = table.orgs[int(table.org[row])] or None
        return (asn if asn > 0 else None), org

    def _v6_bounds(self, table: _RangeTable) -> tuple[list[int], list[int]]:
        # IPv6 addresses do not fit in int64: 128-bit Python ints, built once on first use.
        if self._bounds6 is None:
            self._bounds6 = (_join128(table.start), _join128(table.end))
        return self._bounds6


class MmdbAsn:
    """ASN look-up in a MaxMind GeoLite2-ASN style ``.mmdb``."""

    def __init__(self, path: Path) -> None:
        """Open ``path`` (a ConfigError naming the setting when it cannot be read)."""
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(f"[geo] asn_mmdb: {path}: cannot open ({exc})") from None

    def lookup(self, addr: IntAddress) -> AsnResult:
        """Return (asn, organisation) from the database record, or (None, None)."""
        try:
            rec: Any = self._reader.get(format_ip(addr))
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None, None
        if not isinstance(rec, dict):
            return None, None
        asn = rec.get("autonomous_system_number")
        org = rec.get("autonomous_system_organization")
        return (int(asn) if isinstance(asn, int) else None), (str(org) if org else None)

    def lookup_many(self, addrs: Sequence[IntAddress]) -> list[AsnResult]:
        """:meth:`lookup` for each address."""
        return [self.lookup(a) for a in addrs]


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
