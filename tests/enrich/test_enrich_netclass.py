"""Network classes: real ASNs and ranges, the packaged rules, the settings' own ranges and overrides."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from trailsight.config import Settings
from trailsight.enrich import Enricher
from trailsight.enrich.netclass import (
    NET_CLASSES,
    NetworkClassifier,
    NetworkOptions,
    asn_rules,
    label,
    parse_rules,
)
from trailsight.enrich.network import parse_ip, prefixes
from trailsight.errors import ConfigError


@pytest.mark.parametrize(
    ("ip", "asn", "cls"),
    [
        ("138.68.1.1", 14061, "hosting"),  # DigitalOcean
        ("95.216.1.1", 24940, "hosting"),  # Hetzner
        ("51.68.1.1", 16276, "hosting"),  # OVH
        ("45.79.1.1", 63949, "hosting"),  # Linode (Akamai Connected Cloud)
        ("45.32.1.1", 20473, "hosting"),  # Vultr (The Constant Company)
        ("193.27.13.1", 9009, "vpn"),  # M247: commercial VPN exits
        ("212.102.35.1", 212238, "vpn"),  # Datacamp: commercial VPN exits
        ("185.220.101.1", 60729, "tor"),  # a Tor exit (iporigin's range list)
        ("84.128.1.1", 3320, "residential"),  # Deutsche Telekom
        ("73.1.1.1", 7922, "residential"),  # Comcast
        ("2.200.1.1", 3209, "residential"),  # Vodafone GmbH: cable in Germany
        ("172.58.1.1", 21928, "mobile"),  # T-Mobile USA
        ("52.95.110.1", 16509, "aws"),
    ],
)
def test_real_networks_get_their_class(enricher: Enricher, ip: str, asn: int, cls: str) -> None:
    _, _, _, got_asn, org, net_class, lat, lon, _ = enricher.ip_info(ip)
    assert got_asn == asn, org
    assert net_class == cls, org
    assert lat is not None
    assert lon is not None


@pytest.mark.parametrize(
    ("asn", "org", "cls"),
    [
        (14061, "DigitalOcean, LLC", "hosting"),
        (24940, "Hetzner Online GmbH", "hosting"),
        (16276, "OVH SAS", "hosting"),
        (20473, "The Constant Company, LLC", "hosting"),
        (9009, "M247 Europe SRL", "vpn"),
        (60068, "Datacamp Limited", "vpn"),
        (3320, "Deutsche Telekom AG", "residential"),
        (7922, "Comcast Cable Communications, LLC", "residential"),
        (21928, "T-Mobile USA, Inc.", "mobile"),
        (25135, "Vodafone Limited", "mobile"),
        (3209, "Vodafone GmbH", "residential"),  # the number settles what the name would not
        (20057, "AT&T Enterprises, LLC", "mobile"),
        (16591, "Google Fiber Inc.", "residential"),
        (64500, "Nobody We Know", "other"),
    ],
)
def test_rules_on_asn_and_name_alone(asn: int, org: str, cls: str) -> None:
    """Without an address in iporigin's ranges, the CSV rules decide (a documentation address)."""
    classifier = NetworkClassifier()
    assert classifier.classify("public", parse_ip("198.51.100.7"), asn, org) == cls


def test_kinds_the_enricher_knows_stay_their_class() -> None:
    classifier = NetworkClassifier()
    assert classifier.classify("aws", parse_ip("52.95.110.1"), 16509, "Amazon.com, Inc.") == "aws"
    assert classifier.classify("private", parse_ip("10.1.2.3"), None, None) == "private"
    assert classifier.classify("aws-service", None, None, None) == "aws-service"
    assert classifier.classify("internal", None, None, None) == "internal"
    assert classifier.classify("unknown", None, None, None) == "unknown"


def test_settings_ranges_and_asn_classes_override(tmp_path: Path) -> None:
    settings = Settings(
        path=tmp_path / "trailsight.toml",
        data={
            "network": {
                "office": ["198.51.100.0/24", "2001:db8:10::/48"],
                "vpn": ["203.0.113.0/25"],
                "ci": ["192.0.2.0/24"],
                "asn_classes": {"AS14061": "residential", "64500": "hosting"},
            }
        },
    )
    classifier = NetworkClassifier(NetworkOptions.from_settings(settings))
    assert classifier.classify("public", parse_ip("198.51.100.9"), 3320, "Deutsche Telekom AG") == "office"
    assert classifier.classify("public", parse_ip("2001:db8:10::5"), None, None) == "office"
    assert classifier.classify("public", parse_ip("203.0.113.7"), 9009, "M247 Europe SRL") == "org-vpn"
    assert classifier.classify("public", parse_ip("203.0.113.200"), 9009, "M247 Europe SRL") == "vpn"
    assert classifier.classify("aws", parse_ip("192.0.2.8"), 16509, "Amazon.com, Inc.") == "ci"
    # an own range in private space (an office behind a VPC endpoint) is still the office
    assert (
        NetworkClassifier(NetworkOptions(ranges=((4, 167772160, 184549375, "office"),))).classify(
            "private", parse_ip("10.0.0.1"), None, None
        )
        == "office"
    )
    assert classifier.classify("public", parse_ip("198.18.0.1"), 14061, "DigitalOcean, LLC") == "residential"
    assert classifier.classify("public", parse_ip("198.18.0.1"), 64500, "Example") == "hosting"


def test_enricher_reads_network_settings(tmp_path: Path, data_folder: Path) -> None:
    settings = Settings(path=tmp_path / "t.toml", data={"network": {"office": ["84.128.0.0/16"]}})
    enricher = Enricher.from_settings(settings)
    assert enricher.ip_info("84.128.1.1")[5] == "office"
    assert enricher.ip_info("73.1.1.1")[5] == "residential"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"offices": []}, "unknown setting 'offices'"),
        ({"office": "198.51.100.0/24"}, "office: must be a list of CIDR strings"),
        ({"vpn": ["not-a-net"]}, "vpn: 'not-a-net' is not a CIDR range"),
        ({"asn_classes": {"AS14061": "cloud"}}, "asn_classes: AS14061 = 'cloud'"),
        ({"asn_classes": {"x1": "hosting"}}, "asn_classes: x1"),
        ({"asn_classes": ["14061"]}, "asn_classes: must be a table"),
    ],
)
def test_bad_network_settings_name_the_setting(tmp_path: Path, section: dict[str, object], message: str) -> None:
    settings = Settings(path=tmp_path / "trailsight.toml", data={"network": section})
    with pytest.raises(ConfigError, match=r"trailsight.toml: \[network\]") as err:
        NetworkOptions.from_settings(settings)
    assert message in str(err.value)


def test_packaged_rules_load_and_bad_rows_are_named() -> None:
    rules = asn_rules()
    assert rules.by_asn[3209] == "residential"
    assert len(rules.by_org) >= 5
    with pytest.raises(ConfigError, match=r"rules.csv: row 2: class 'cloud'"):
        parse_rules(["match,pattern,class,note", "org,x,cloud,"], "rules.csv")
    with pytest.raises(ConfigError, match="row 2: bad pattern"):
        parse_rules(["match,pattern,class,note", "org,(x,hosting,"], "rules.csv")
    with pytest.raises(ConfigError, match="row 3: match must be asn"):
        parse_rules(["# c", "match,pattern,class,note", "org,x,hosting,", "asn,AS1,hosting,"], "rules.csv")


def test_every_class_has_words() -> None:
    assert all(label(c) for c in NET_CLASSES)
    assert label("residential") == "home broadband"
    assert label(None) == "unknown"


def test_prefixes_are_the_learning_unit() -> None:
    assert prefixes(["203.0.113.77", "2001:db8:1:2::5", "10.0.0.1", "lambda.amazonaws.com", ""]) == [
        "203.0.113.0/24",
        "2001:db8:1::/48",
        None,
        None,
        None,
    ]


def test_real_capture_gets_classes(enricher: Enricher, real_data: Path) -> None:
    """Every call of the Stratus capture gets a class; its public addresses are classified networks."""
    records = [
        rec
        for path in sorted((real_data / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json"))
        for rec in json.loads(path.read_text())["Records"]
    ]
    ips = pa.array([rec.get("sourceIPAddress") for rec in records], pa.string())
    times = pa.array([datetime.fromisoformat(rec["eventTime"]) for rec in records], pa.timestamp("us", tz="UTC"))
    out = enricher.enrich(pa.table({"source_ip": ips, "event_time": times})).to_pylist()
    assert {r["net_class"] for r in out} <= set(NET_CLASSES)
    by_ip = {r["source_ip"]: r for r in out}
    assert by_ip["192.168.10.20"]["net_class"] == "private"
    assert by_ip["AWS Internal"]["net_class"] == "internal"
    assert by_ip["3.225.16.109"]["net_class"] == "aws"
    assert by_ip["3.225.16.109"]["net_prefix"] == "3.225.16.0/24"
    public = [r for r in out if r["ip_kind"] in ("public", "aws")]
    assert public
    assert all(r["net_class"] not in ("unknown", None) for r in public)
    assert all(r["latitude"] is not None for r in public)
