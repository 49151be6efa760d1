"""Small normalised event tables for tests and benchmarks (kept out of the package: it is test data).

:func:`make_events` fills every column of :data:`trailsight.schema.EVENT_SCHEMA` from a few
keyword fields per event, and :func:`write_lake` lays such a table out as a store's lake
(``lake/account_id=/event_date=/…parquet``) the way ingest does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from trailsight.schema import EVENT_SCHEMA
from trailsight.store.layout import StoreLayout

_DEFAULTS: dict[str, Any] = {
    "account_id": "111111111111",
    "region": "us-east-1",
    "event_source": "ec2.amazonaws.com",
    "event_name": "DescribeInstances",
    "read_only": True,
    "event_type": "AwsApiCall",
    "identity_type": "IAMUser",
    "source_ip": "198.51.100.7",
    "user_agent": "aws-cli/2.15.0",
    "ua_family": "cli",
    "ip_kind": "public",
    "country": "GB",
    "city": "London",
    "asn": 64500,
    "as_org": "Example ISP",
    "api_risk": 0.1,
}


def make_events(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Return an EVENT_SCHEMA table; each row needs ``event_time`` (aware UTC) and ``principal``."""
    records = []
    for i, row in enumerate(rows):
        rec = dict(_DEFAULTS)
        rec.update(row)
        when: datetime = rec["event_time"]
        if when.tzinfo is None:
            raise ValueError("event_time must be timezone-aware")
        rec.setdefault("event_date", when.date())
        rec.setdefault("actor", rec["principal"])
        rec.setdefault("service", str(rec["event_source"]).removesuffix(".amazonaws.com"))
        if "event_id" not in rec:
            digest = hashlib.sha1(f"{i}|{when.isoformat()}|{rec['principal']}".encode(), usedforsecurity=False)
            rec["event_id"] = digest.hexdigest()[:32]
        records.append(rec)
    columns = {f.name: [r.get(f.name) for r in records] for f in EVENT_SCHEMA}
    return pa.Table.from_pydict(columns, schema=EVENT_SCHEMA)


def write_lake(layout: StoreLayout, table: pa.Table, batch: str = "sample") -> list[Path]:
    """Write ``table`` into the store's lake and register the files, as ingest would."""
    from trailsight.store import lake, state

    files = lake.write_batch(layout, table, batch)
    with state.connect(layout) as con:
        lake.ensure_tables(con)
        lake.register_files(con, files, batch)
    return [Path(f.path) for f in files]


ACCOUNT = "111111111111"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
CAROL = f"arn:aws:iam::{ACCOUNT}:user/carol"
DEPLOY = f"arn:aws:iam::{ACCOUNT}:role/deploy"
NEWBIE = f"arn:aws:iam::{ACCOUNT}:user/newbie"

_HOME = {
    "asn": 64500,
    "as_org": "Example Broadband",
    "country": "GB",
    "city": "London",
    "source_ip": "198.51.100.7",
    "net_class": "residential",
    "net_prefix": "198.51.100.0/24",
    "latitude": 51.51,
    "longitude": -0.13,
}
_AWS = {
    "asn": 16509,
    "as_org": "Amazon",
    "country": "US",
    "city": "Ashburn",
    "source_ip": "3.5.6.7",
    "ip_kind": "aws",
    "net_class": "aws",
    "net_prefix": "3.5.6.0/24",
    "latitude": 39.04,
    "longitude": -77.49,
    "user_agent": "Boto3/1.34.0 Python/3.12",
    "ua_family": "sdk-python",
    "identity_type": "AssumedRole",
}
_ATTACK_NET = {
    "asn": 9009,
    "as_org": "M247 Europe",
    "country": "RO",
    "city": "Bucharest",
    "source_ip": "185.220.101.5",
    "net_class": "vpn",
    "net_prefix": "185.220.101.0/24",
    "latitude": 44.43,
    "longitude": 26.10,
    "user_agent": "Boto3/1.34.0 Python/3.12",
    "ua_family": "sdk-python",
}


def scenario_events(history_days: int = 21) -> pa.Table:
    """A small organisation: ``history_days`` of routine, then one day with an attack and oddities.

    Days start on Monday 2025-01-06. On the last day: alice works at 03:00 UTC from a new
    network with a new agent and calls CreateUser, AttachUserPolicy and StopLogging; bob makes
    60 calls in half an hour; the deploy role gets a burst of distinct AccessDenied errors;
    carol calls CreateUser ten times; a brand-new principal (newbie) calls CreateAccessKey.
    """
    from datetime import UTC, timedelta

    start = datetime(2025, 1, 6, tzinfo=UTC)
    rows: list[dict[str, Any]] = []

    def add(when: datetime, principal: str, name: str, source: str, **extra: Any) -> None:
        rows.append({"event_time": when, "principal": principal, "event_name": name, "event_source": source, **extra})

    for d in range(history_days):
        day = start + timedelta(days=d)
        if day.weekday() < 5:
            for minute in (0, 10, 20):
                add(day + timedelta(hours=9, minutes=minute), ALICE, "ListBuckets", "s3.amazonaws.com", **_HOME)
            for minute in (0, 5):
                add(day + timedelta(hours=13, minutes=minute), ALICE, "DescribeInstances", "ec2.amazonaws.com", **_HOME)
            for minute in (0, 15, 30):
                add(day + timedelta(hours=10, minutes=minute), BOB, "GetObject", "s3.amazonaws.com", **_HOME)
            add(day + timedelta(hours=11), CAROL, "ListUsers", "iam.amazonaws.com", api_risk=0.3, **_HOME)
        for hour in range(0, 24, 2):
            add(day + timedelta(hours=hour, minutes=7), DEPLOY, "PutObject", "s3.amazonaws.com", **_AWS)

    test = start + timedelta(days=history_days)
    # alice, compromised: new network, new agent family, odd hour, dangerous new APIs.
    attack = [
        ("ListBuckets", "s3.amazonaws.com", 0.1, None),
        ("CreateUser", "iam.amazonaws.com", 0.8, "Persistence"),
        ("AttachUserPolicy", "iam.amazonaws.com", 0.9, "PrivilegeEscalation"),
        ("StopLogging", "cloudtrail.amazonaws.com", 1.0, "DefenseEvasion"),
    ]
    for i, (name, source, risk, tactic) in enumerate(attack):
        add(test + timedelta(hours=3, minutes=2 * i), ALICE, name, source, api_risk=risk, tactic=tactic, **_ATTACK_NET)
    # bob: a burst of his usual call.
    for i in range(60):
        add(test + timedelta(hours=10, seconds=30 * i), BOB, "GetObject", "s3.amazonaws.com", **_HOME)
    # deploy: a burst of distinct AccessDenied errors.
    for i in range(8):
        add(
            test + timedelta(hours=12, minutes=i),
            DEPLOY,
            "PutObject",
            "s3.amazonaws.com",
            error_code="AccessDenied",
            error_message=f"Access Denied for bucket backup-{i}",
            **_AWS,
        )
    # carol: ten CreateUser calls in a row (the leakage test counts them).
    for i in range(10):
        add(test + timedelta(hours=14, minutes=i), CAROL, "CreateUser", "iam.amazonaws.com", api_risk=0.8, **_HOME)
    # a brand-new principal calling a dangerous API (the enough-data gate).
    add(
        test + timedelta(hours=15),
        NEWBIE,
        "CreateAccessKey",
        "iam.amazonaws.com",
        api_risk=0.9,
        tactic="Persistence",
        **_HOME,
    )
    rows.sort(key=lambda r: (r["event_time"], r["principal"], r["event_name"]))
    return make_events(rows)
