"""The ASN range tables: CSV parsing, the .npz cache beside the CSV (or in ~/.cache), IPv6 ranges."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from trailsight.enrich.asn import AsnTable
from trailsight.enrich.network import parse_ip

V4_ROWS = """16777216,16777471,13335,"Cloudflare, Inc."
134744064,134744319,15169,Google LLC
3758095360,3758095871,58519,Cloud Computing Corporation
"""


def _v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


# 2001:db8::/33 split in two at a boundary inside a /64 (as 183 real rows are), then 2001:db8:8000::/33
V6_ROWS = f"""{_v6("2001:db8::")},{_v6("2001:db8::ff")},64500,First Half Org
{_v6("2001:db8::100")},{_v6("2001:db8:7fff:ffff:ffff:ffff:ffff:ffff")},64501,Second Org
{_v6("2001:db8:8000::")},{_v6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")},64502,"Third, Org"
"""


def _write(folder: Path) -> tuple[Path, Path]:
    v4, v6 = folder / "asn-ipv4-num.csv", folder / "asn-ipv6-num.csv"
    v4.write_text(V4_ROWS)
    v6.write_text(V6_ROWS)
    return v4, v6


def _lookup(table: AsnTable, ip: str) -> tuple[int | None, str | None]:
    addr = parse_ip(ip)
    assert addr is not None
    return table.lookup(addr)


def test_parse_lookup_and_cache(tmp_path: Path) -> None:
    v4, v6 = _write(tmp_path)
    table = AsnTable.load(v4, v6)
    assert _lookup(table, "1.0.0.1") == (13335, "Cloudflare, Inc.")
    assert _lookup(table, "8.8.8.8") == (15169, "Google LLC")
    assert _lookup(table, "1.0.1.0") == (None, None)
    assert _lookup(table, "0.0.0.1") == (None, None)
    assert _lookup(table, "2001:db8::1") == (64500, "First Half Org")
    assert _lookup(table, "2001:db8::100") == (64501, "Second Org")
    assert _lookup(table, "2001:db8:ffff::1") == (64502, "Third, Org")
    assert _lookup(table, "2001:db9::1") == (None, None)
    assert (tmp_path / "asn-ipv4-num.npz").is_file()
    assert (tmp_path / "asn-ipv6-num.npz").is_file()
    # the second load reads the cache and answers the same
    again = AsnTable.load(v4, v6)
    assert _lookup(again, "8.8.8.8") == (15169, "Google LLC")
    assert again.lookup_many([a for a in (parse_ip("1.0.0.1"), parse_ip("2001:db8::1")) if a]) == [
        (13335, "Cloudflare, Inc."),
        (64500, "First Half Org"),
    ]


def test_changed_csv_rebuilds_the_cache(tmp_path: Path) -> None:
    v4, v6 = _write(tmp_path)
    AsnTable.load(v4, v6)
    v4.write_text(V4_ROWS.replace("Google LLC", "Renamed Org"))
    os.utime(v4, ns=(1, 2))  # a different mtime as well as a different size
    assert _lookup(AsnTable.load(v4, v6), "8.8.8.8") == (15169, "Renamed Org")


def test_unwritable_cache_beside_csv_falls_back_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    v4, v6 = _write(data)
    # a folder where the cache file should go: it can be neither read nor replaced (even by root)
    (data / "asn-ipv4-num.npz").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert _lookup(AsnTable.load(v4, v6), "8.8.8.8") == (15169, "Google LLC")
    assert (tmp_path / "cache" / "trailsight" / "asn-ipv4-num.npz").is_file()
    assert not list(data.glob(".*tmp*"))  # no temporary file left behind
    assert _lookup(AsnTable.load(v4, v6), "8.8.8.8") == (15169, "Google LLC")


def test_missing_files_give_an_empty_table(tmp_path: Path) -> None:
    table = AsnTable.load(tmp_path / "nope.csv", None)
    assert table.empty
    assert _lookup(table, "8.8.8.8") == (None, None)
