"""Network class against the person's habit, the learned organisation egress, and geo-velocity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pytest

from sample_events import ACCOUNT, make_events
from trailsight.detectors import registry
from trailsight.detectors.geo_velocity import great_circle_km
from trailsight.features import build_feature_table

START = datetime(2025, 3, 3, tzinfo=UTC)
DAY = START + timedelta(days=14)

HOME = {
    "source_ip": "84.128.1.1",
    "asn": 3320,
    "as_org": "Deutsche Telekom AG",
    "country": "DE",
    "city": "Berlin",
    "net_class": "residential",
    "net_prefix": "84.128.1.0/24",
    "latitude": 52.52,
    "longitude": 13.40,
}
NEIGHBOUR = {**HOME, "source_ip": "84.129.7.7", "city": "Potsdam", "net_prefix": "84.129.7.0/24", "latitude": 52.39}
SYDNEY = {
    "source_ip": "1.120.1.1",
    "asn": 1221,
    "as_org": "Telstra Limited",
    "country": "AU",
    "city": "Sydney",
    "net_class": "residential",
    "net_prefix": "1.120.1.0/24",
    "latitude": -33.87,
    "longitude": 151.21,
}
VPN_US = {
    "source_ip": "193.27.13.1",
    "asn": 9009,
    "as_org": "M247 Europe SRL",
    "country": "US",
    "city": "Dallas",
    "net_class": "vpn",
    "net_prefix": "193.27.13.0/24",
    "latitude": 32.79,
    "longitude": -96.80,
}
VPS_SG = {
    "source_ip": "128.199.1.1",
    "asn": 14061,
    "as_org": "DigitalOcean, LLC",
    "country": "SG",
    "city": "Singapore",
    "net_class": "hosting",
    "net_prefix": "128.199.1.0/24",
    "latitude": 1.29,
    "longitude": 103.85,
}
OFFICE = {
    "source_ip": "38.94.179.20",
    "asn": 174,
    "as_org": "Cogent Communications",
    "country": "US",
    "city": "Chicago",
    "net_class": "other",
    "net_prefix": "38.94.179.0/24",
    "latitude": 41.88,
    "longitude": -87.63,
}


def _event(when: datetime, principal: str, net: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "event_time": when,
        "principal": principal,
        "event_name": "ListBuckets",
        "event_source": "s3.amazonaws.com",
        **net,
        **extra,
    }


def _history(principal: str, *nets: dict[str, Any], days: int = 14) -> list[dict[str, Any]]:
    """A person calling every day at 09:00 from ``nets`` in turn (several a day)."""
    rows = []
    for d in range(days):
        for k, net in enumerate(nets):
            rows.append(_event(START + timedelta(days=d, hours=9, minutes=10 * k), principal, net))
    return rows


def _user(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


KEY = {"access_key_id": "AKIAEXAMPLEKEY000001"}
T = DAY + timedelta(hours=10)
OTHER_DROPLET = {**VPS_SG, "source_ip": "128.199.9.9", "net_prefix": "128.199.9.0/24"}
NEW_ISP = {**NEIGHBOUR, "asn": 3209, "as_org": "Vodafone GmbH", "source_ip": "88.64.1.1", "net_prefix": "88.64.1.0/24"}

#: One organisation, one person per case: (principal, usual networks, the scored day's calls).
CASES: dict[str, tuple[tuple[dict[str, Any], ...], list[tuple[timedelta, dict[str, Any]]]]] = {
    "two_continents": ((HOME,), [(timedelta(0), HOME), (timedelta(minutes=40), SYDNEY)]),
    "flew": ((HOME,), [(timedelta(hours=-9), HOME), (timedelta(hours=13), SYDNEY)]),
    "vpn_hop": ((HOME, VPN_US), [(timedelta(0), HOME), (timedelta(minutes=20), VPN_US), (timedelta(minutes=40), HOME)]),
    "new_vps": ((HOME,), [(timedelta(0), HOME), (timedelta(minutes=30), VPS_SG)]),
    "neighbour": ((HOME,), [(timedelta(0), HOME), (timedelta(minutes=5), NEIGHBOUR)]),
    "cron_vps": ((HOME, VPS_SG), [(timedelta(0), OTHER_DROPLET)]),
    "new_isp": ((HOME,), [(timedelta(0), NEW_ISP)]),
}


def _case_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, (usual, calls) in CASES.items():
        rows += _history(_user(name), *usual)
        rows += [_event(T + at, _user(name), net, **KEY) for at, net in calls]
    # The office: five colleagues use it on the first days; "office" on the scored day only, and
    # a sixth colleague on the scored day before it (the same day must not count).
    for n in range(5):
        rows += _history(_user(f"colleague{n}"), HOME)
        rows.append(_event(START + timedelta(days=2 + n, hours=8), _user(f"colleague{n}"), OFFICE))
    rows += _history(_user("office"), HOME)
    rows.append(_event(DAY + timedelta(hours=7), _user("colleague9"), OFFICE))
    rows.append(_event(DAY + timedelta(hours=9), _user("office"), OFFICE))
    # The first colleague's office day: a same-day user is not yet counted.
    rows.append(_event(START + timedelta(days=2, hours=9), _user("early"), OFFICE))
    return rows


@pytest.fixture(scope="module")
def features() -> pa.Table:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    expr = build_feature_table(ibis.memtable(make_events(_case_rows())), START, DAY + timedelta(days=1))
    return con.to_pyarrow(expr)


def _fired(name: str, features: pa.Table, who: str, **params: Any) -> list[dict[str, Any]]:
    det = registry.get(name)(**params)
    scores = det.score(features)
    rows = features.to_pylist()
    return [
        {**rows[i], "_score": float(scores.score[i]), "_reasons": scores.reasons[i]}
        for i in range(len(rows))
        if scores.fired[i] and rows[i]["event_time"] >= DAY and rows[i]["principal"] == _user(who)
    ]


def test_great_circle_distance() -> None:
    km = great_circle_km(np.array([52.52]), np.array([13.40]), np.array([-33.87]), np.array([151.21]))
    assert 16_000 < float(km[0]) < 16_200  # Berlin to Sydney


def test_a_key_used_from_two_continents_within_an_hour_is_raised(features: pa.Table) -> None:
    fired = _fired("geo_velocity", features, "two_continents")
    assert len(fired) == 1
    (reason,) = fired[0]["_reasons"]
    assert reason.code == "impossible_travel"
    assert "Sydney, AU" in reason.message
    assert "40 minutes earlier" in reason.message
    assert reason.details["access_key_id"] == "AKIAEXAMPLEKEY000001"
    assert reason.details["kmh"] > 20_000


def test_the_same_trip_with_time_to_fly_is_travel(features: pa.Table) -> None:
    assert _fired("geo_velocity", features, "flew") == []


def test_a_hop_through_the_persons_usual_vpn_is_not_travel(features: pa.Table) -> None:
    assert _fired("geo_velocity", features, "vpn_hop") == []
    assert _fired("unusual_network", features, "vpn_hop") == []


def test_a_hosting_network_new_to_the_person_far_away_is_raised(features: pa.Table) -> None:
    travel = _fired("geo_velocity", features, "new_vps")
    assert [r["source_ip"] for r in travel] == [VPS_SG["source_ip"]]
    (row,) = _fired("unusual_network", features, "new_vps")
    reason = row["_reasons"][0]
    assert reason.code == "new_rented_network_for_principal"
    # another person of the account uses DigitalOcean (cron_vps), so the ASN is not new to the account
    assert reason.message == (
        "from a hosting provider (AS14061 DigitalOcean, LLC) in SG; "
        "the principal never called from a hosting provider before"
    )
    assert row["_score"] == pytest.approx(0.9)


def test_a_neighbouring_city_is_not_travel(features: pa.Table) -> None:
    assert _fired("geo_velocity", features, "neighbour") == []


def test_a_hosting_network_the_person_always_uses_is_quiet(features: pa.Table) -> None:
    """The engineer whose cron job runs on a VPS: a new droplet of the same provider raises nothing."""
    assert _fired("unusual_network", features, "cron_vps") == []


def test_new_home_broadband_scores_below_a_new_rented_network(features: pa.Table) -> None:
    (row,) = _fired("unusual_network", features, "new_isp")
    assert row["_score"] < 0.9
    assert row["_reasons"][0].code != "new_rented_network_for_principal"


def test_the_organisation_egress_is_learned_as_of_the_event(features: pa.Table) -> None:
    rows = features.to_pylist()
    office = [r for r in rows if r["principal"] == _user("office") and r["source_ip"] == OFFICE["source_ip"]]
    # five colleagues and "early" on earlier days; colleague9 used it the same day: not counted
    assert [r["a_net_principals"] for r in office] == [6]
    early = [r for r in rows if r["principal"] == _user("early")]
    assert [r["a_net_principals"] for r in early] == [0]  # colleague0's first office day
    assert _fired("unusual_network", features, "office") == []
    # With a higher bar the office is not yet the egress, and its new ASN is unusual for the person.
    assert len(_fired("unusual_network", features, "office", egress_principals=7)) == 1
