"""Each seed detector fires on what its source system would flag in the sample scenario."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from sample_events import ALICE, BOB, CAROL, DEPLOY
from trailsight.detectors import registry

TEST_DAY = datetime(2025, 1, 27, tzinfo=UTC)


def fired_rows(name: str, table: pa.Table, **params: Any) -> list[dict[str, Any]]:
    out = registry.get(name)(**params).score(table)
    rows = table.to_pylist()
    return [dict(rows[i], _reasons=out.reasons[i], _score=out.score[i]) for i in range(len(rows)) if out.fired[i]]


def only(rows: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> bool:
    return bool(rows) and all(test(r) for r in rows)


def is_attack(r: dict[str, Any]) -> bool:
    return bool(r["principal"] == ALICE and r["event_time"] >= TEST_DAY)


def test_rare_api_for_principal_flags_new_apis(scenario_features: pa.Table) -> None:
    rows = [r for r in fired_rows("rare_api_for_principal", scenario_features) if r["event_time"] >= TEST_DAY]
    names = {(r["principal"], r["event_name"]) for r in rows}
    assert {(ALICE, "CreateUser"), (ALICE, "AttachUserPolicy"), (ALICE, "StopLogging")} <= names
    assert (ALICE, "ListBuckets") not in names
    assert (BOB, "GetObject") not in names
    first = next(r for r in rows if r["event_name"] == "StopLogging")
    assert first["_reasons"][0].code == "new_api_for_principal"
    assert first["_reasons"][0].details["principals_in_account_using"] == 0
    # Splunk semantics: carol's later CreateUser calls are still "first seen within 24 h".
    assert sum(1 for r in rows if r["principal"] == CAROL) == 10


def test_rare_api_for_location(scenario_features: pa.Table) -> None:
    # Bucharest and RO have no history: a place without a baseline is not judged by these rules.
    city = fired_rows("rare_api_for_city", scenario_features)
    assert only(city, lambda r: r["city"] == "London")
    assert {r["event_name"] for r in city} == {"CreateUser", "CreateAccessKey"}  # never called from London
    assert city[0]["_reasons"][0].code == "new_api_for_city"
    country = fired_rows("rare_api_for_country", scenario_features)
    assert only(country, lambda r: r["country"] == "GB")


def test_rare_error_code_and_error_spike(scenario_features: pa.Table) -> None:
    rare = fired_rows("rare_error_code", scenario_features)
    assert rare
    assert rare[0]["principal"] == DEPLOY
    assert rare[0]["_reasons"][0].code == "new_error_code_for_account"
    spike = fired_rows("error_message_spike", scenario_features)
    assert only(spike, lambda r: r["error_code"] == "AccessDenied" and r["err_distinct_15m"] >= 3)


def test_unusual_network_and_user_agent(scenario_features: pa.Table) -> None:
    assert only(fired_rows("unusual_network", scenario_features), lambda r: is_attack(r) or r["p_days"] < 3)
    net = [r for r in fired_rows("unusual_network", scenario_features) if is_attack(r)]
    # a commercial VPN nobody in the account used, from a class alice never called from
    assert net[0]["_reasons"][0].code == "new_rented_network_for_principal"
    assert "commercial VPN" in net[0]["_reasons"][0].message
    assert "nobody in this account uses it" in net[0]["_reasons"][0].message
    ua = [r for r in fired_rows("unusual_user_agent", scenario_features) if r["event_time"] >= TEST_DAY]
    assert only(ua, is_attack)
    assert ua[0]["_reasons"][0].code == "new_user_agent_family"


def test_off_hours_flags_hours_never_worked(scenario_features: pa.Table) -> None:
    rows = [r for r in fired_rows("off_hours", scenario_features) if r["event_time"] >= TEST_DAY]
    # alice at 03:00; carol at 14:00 (she only ever worked at 11:00); never bob or the 24/7 role.
    assert {r["principal"] for r in rows} == {ALICE, CAROL}
    assert all(r["hour"] == 3 for r in rows if r["principal"] == ALICE)


def test_volume_spike_flags_bobs_burst(scenario_features: pa.Table) -> None:
    rows = fired_rows("volume_spike", scenario_features)
    assert only(rows, lambda r: r["principal"] == BOB and r["event_time"] >= TEST_DAY + timedelta(hours=10))
    assert rows[0]["p_hour_count"] + 1 >= 20
    assert rows[0]["_reasons"][0].details["p"] <= 0.005


@pytest.mark.parametrize("name", ["rare_api_for_principal", "off_hours", "unusual_network"])
def test_a_higher_threshold_fires_less(name: str, scenario_features: pa.Table) -> None:
    assert len(fired_rows(name, scenario_features, threshold=100)) <= len(fired_rows(name, scenario_features))
