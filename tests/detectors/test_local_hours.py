"""Working hours on the caller's clock, end to end: hand-made CloudTrail through ingest and detect.

Three people work from New York (UTC-5 in January) 09:00–16:00 local for four weeks. Then:
ava spends four days in Lisbon (UTC+0) keeping the same local hours; ben makes one call from
Lisbon at 03:00 New York time; cid works from home at 03:00 local. The geolocation database
is a two-record .mmdb: the lower half of IPv4 is New York, the upper half Lisbon.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mmdb_writer import two_record_mmdb
from trailsight.config import Settings
from trailsight.enrich.timezone import offset_words, utc_offsets, zone_at, zone_of_record
from trailsight.finding import Finding
from trailsight.ingest import ingest
from trailsight.pipeline import detect

ACCOUNT = "123456789012"
DAY0 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday; New York keeps UTC-5 all month
HOME_IP, ABROAD_IP = "20.1.2.3", "200.1.2.3"
HISTORY_DAYS = 28
TRIP = HISTORY_DAYS  # ava's first day in Lisbon; she stays four days


def _record(n: int, user: str, at: datetime, ip: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": f"AIDA{user.upper()}",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}",
            "accountId": ACCOUNT,
            "accessKeyId": f"AKIA{user.upper()}0000000001"[:20],
            "userName": user,
        },
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0",
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"req-{n}",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }


def _workday(user: str, day: int, ip: str, first_utc_hour: int) -> list[tuple[str, datetime, str]]:
    """Eight hourly calls from ``first_utc_hour`` UTC on ``day``."""
    start = DAY0 + timedelta(days=day, hours=first_utc_hour, minutes=7)
    return [(user, start + timedelta(hours=h), ip) for h in range(8)]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """The store, ingested with the two-city database, and the settings to detect with."""
    root = tmp_path_factory.mktemp("local-hours")
    mmdb = root / "city.mmdb"
    new_york = {"country_code": "US", "city": "New York", "timezone": "America/New_York"}
    lisbon = {"country_code": "PT", "city": "Lisbon", "timezone": "Europe/Lisbon"}
    mmdb.write_bytes(two_record_mmdb(new_york, lisbon))
    calls: list[tuple[str, datetime, str]] = []
    for user in ("ava", "ben", "cid"):
        for day in range(HISTORY_DAYS):
            calls += _workday(user, day, HOME_IP, 14)  # 09:00-16:00 in New York
    for day in range(TRIP, TRIP + 4):
        calls += _workday("ava", day, ABROAD_IP, 9)  # 09:00-16:00 in Lisbon
    one_off = DAY0 + timedelta(days=TRIP + 3, hours=8, minutes=10)  # 03:10 in New York
    calls += [("ben", one_off, ABROAD_IP), ("cid", one_off, HOME_IP)]
    records = [_record(n, user, at, ip) for n, (user, at, ip) in enumerate(sorted(calls, key=lambda c: c[1]))]
    logs = root / "logs"
    logs.mkdir()
    (logs / f"{ACCOUNT}_CloudTrail_us-east-1_20250206T0000Z_test.json").write_text(
        json.dumps({"Records": records}), encoding="utf-8"
    )
    geo = {"city_mmdb": str(mmdb), "data_dir": str(root / "no-data")}
    # off_hours alone, on a harmless API: keep every event it scores at all
    settings = Settings(
        data={"geo": geo, "detect": {"event_threshold": 0.01}, "detectors": {"off_hours": {"threshold": 1}}}
    )
    store = root / "store"
    ingest([logs], store, settings, workers=0)
    return store, settings


def _detect(store: Path, settings: Settings) -> list[Finding]:
    since = DAY0 + timedelta(days=TRIP)
    return detect(
        store, since, since + timedelta(days=4), settings, ["off_hours"], save=False, describe=False, min_score=0.0
    )


@pytest.fixture(scope="module")
def findings(ingested: tuple[Path, Settings]) -> list[Finding]:
    return _detect(*ingested)


def _off_hours(findings: list[Finding], user: str, day: int) -> list[str]:
    """The off_hours messages of ``user``'s findings first seen on ``day``."""
    return [
        r.message
        for f in findings
        if f.principal.endswith(f":user/{user}") and (f.first_seen - DAY0).days == day
        for r in f.reasons
        if r.detector == "off_hours"
    ]


def test_a_stay_abroad_is_judged_by_the_local_hours_once_settled(findings: list[Finding]) -> None:
    # Her first two days in Lisbon are one-offs, judged on the UTC clock: 09:00 UTC is new.
    assert any(m.startswith("active at 09:00 UTC,") for m in _off_hours(findings, "ava", TRIP))
    # From the third day she has called from Portugal on two earlier days: 09:00 in Lisbon is her
    # usual 09:00 (on the UTC clock 09:00 would still be an hour of 2 of her 30 days).
    assert _off_hours(findings, "ava", TRIP + 2) == []
    assert _off_hours(findings, "ava", TRIP + 3) == []


def test_a_one_off_call_from_abroad_at_night_at_home_is_still_flagged(findings: list[Finding]) -> None:
    (msg,) = set(_off_hours(findings, "ben", TRIP + 3))
    assert msg.startswith("active at 08:00 UTC, an hour it worked in on 0 of its 28 active days")


def test_a_night_at_home_stays_a_night_and_says_which_clock(findings: list[Finding]) -> None:
    (msg,) = set(_off_hours(findings, "cid", TRIP + 3))
    assert msg.startswith(
        "active at 03:00 local time in New York (UTC-5), where it has called from on 28 earlier days, "
        "an hour it worked in on 0 of its 28 active days"
    )


def test_a_lake_written_before_the_zone_columns_falls_back_to_utc(
    ingested: tuple[Path, Settings], tmp_path: Path
) -> None:
    store, settings = ingested
    old = tmp_path / "store"
    shutil.copytree(store, old)
    for path in (old / "lake").rglob("*.parquet"):
        table = pq.ParquetFile(path).read()
        pq.write_table(table.drop_columns(["time_zone", "utc_offset"]), path)
    found = _detect(old, settings)
    (msg,) = set(_off_hours(found, "cid", TRIP + 3))
    assert msg.startswith("active at 08:00 UTC, an hour it worked in on 0 of its 28 active days")
    # with no local clock, ava's stay abroad is judged in UTC throughout
    assert any(m.startswith("active at 09:00 UTC,") for m in _off_hours(found, "ava", TRIP + 2))


def test_zones_come_from_the_record_or_its_coordinates() -> None:
    assert zone_of_record({"country_code": "PT", "latitude": 38.72, "longitude": -9.14, "timezone": ""}) == (
        "Europe/Lisbon"
    )
    assert zone_of_record({"location": {"time_zone": "Asia/Kolkata", "latitude": 0.0, "longitude": 0.0}}) == (
        "Asia/Kolkata"
    )
    assert zone_of_record({"country_code": "US", "city": "Somewhere"}) is None
    assert zone_at(91.0, 0.0) is None
    assert zone_at(float("nan"), 0.0) is None


def test_offsets_follow_summer_time() -> None:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    zones = pa.array(["America/New_York", "America/New_York", None, "Asia/Kolkata"])
    times = pa.array(
        [
            datetime(2025, 3, 9, 6, 59, tzinfo=UTC),  # 01:59 EST
            datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # 03:00 EDT
            datetime(2025, 3, 9, 7, 0, tzinfo=UTC),
            datetime(2025, 3, 9, 7, 0, tzinfo=UTC),
        ],
        ts,
    )
    assert utc_offsets(zones, times).to_pylist() == [-300, -240, None, 330]
    assert [offset_words(m) for m in (0, -300, 330)] == ["UTC+0", "UTC-5", "UTC+5:30"]


def test_the_local_clock_excuses_but_never_accuses() -> None:
    import pyarrow as pa

    from trailsight.detectors.base import Columns
    from trailsight.detectors.off_hours import OffHoursDetector

    ts = pa.timestamp("us", tz="UTC")
    now, before = datetime(2025, 3, 10, 3, 30, tzinfo=UTC), datetime(2025, 3, 9, 3, 30, tzinfo=UTC)
    n = 3
    cols = Columns(
        pa.table(
            {
                "event_time": pa.array([now] * n, ts),
                "hour": [3.0] * n,
                "p_days": [30.0] * n,
                "p_last": pa.array([before] * n, ts),
                # a job at 03:00 UTC every day, whose local hour moved when summer time began
                # | a person abroad, usual on the local clock | settled, both clocks unusual
                "p_hour_days": [30.0, 0.0, 0.0],
                "p_hour_last": pa.array([before, None, None], ts),
                "lhour": pa.array([23, 9, 22], pa.int64()),
                "utc_offset": pa.array([-240, 360, -300], pa.int64()),
                "country": ["US", "IN", "US"],
                "city": ["Ashburn", "Pune", "Boston"],
                "p_lhour_days": [0.0, 25.0, 0.0],
                "p_lhour_last": pa.array([None, before, None], ts),
                "p_country_days": [30.0] * n,
                "p_country_last": pa.array([before] * n, ts),
                "p_country_hours": [30.0] * n,
            }
        )
    )
    score, _ = OffHoursDetector()._score(cols)
    assert score.tolist() == [0.0, 0.0, 1.0]
