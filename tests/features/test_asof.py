"""As-of features: leak-free counts, pieces equal the whole, forget window, gates, frequency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sample_events import ALICE, BOB, CAROL, NEWBIE, make_events, scenario_events
from trailsight.features import FeatureOptions, build_feature_table, feature_columns

START = datetime(2025, 1, 6, tzinfo=UTC)
TEST_DAY = START + timedelta(days=21)


def features(events: pa.Table, since: datetime, until: datetime, **opts: int) -> pa.Table:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    expr = build_feature_table(ibis.memtable(events), since, until, FeatureOptions(**opts))
    return con.to_pyarrow(expr)


@pytest.fixture(scope="module")
def scenario() -> pa.Table:
    return scenario_events()


@pytest.fixture(scope="module")
def whole(scenario: pa.Table) -> pa.Table:
    return features(scenario, START, TEST_DAY + timedelta(days=1))


def rows_of(table: pa.Table, principal: str, name: str | None = None) -> list[dict[str, object]]:
    mask = pc.equal(table["principal"], principal)
    if name is not None:
        mask = pc.and_(mask, pc.equal(table["event_name"], name))
    return table.filter(mask).sort_by([("event_time", "ascending"), ("event_id", "ascending")]).to_pylist()


def test_columns_are_the_documented_ones(whole: pa.Table) -> None:
    for col in feature_columns():
        assert col in whole.column_names


def test_first_call_is_unseen_and_the_tenth_seen_nine_times(whole: pa.Table) -> None:
    calls = rows_of(whole, CAROL, "CreateUser")
    assert [r["p_api_n"] for r in calls] == list(range(10))
    assert calls[0]["p_api_freq"] == "unseen"
    assert calls[0]["p_api_first"] is None
    assert calls[9]["p_api_first"] == calls[0]["event_time"]
    assert calls[9]["p_api_last"] == calls[8]["event_time"]
    assert calls[9]["p_api_days"] == 1


def test_counts_span_days_and_never_include_the_event(whole: pa.Table) -> None:
    lists = rows_of(whole, ALICE, "ListBuckets")
    # 3 calls per working day: the n-th call has seen exactly n-1 before it.
    assert [r["p_api_n"] for r in lists] == list(range(len(lists)))
    assert lists[3]["p_api_days"] == 1
    assert lists[2]["p_api_days"] == 1
    assert lists[0]["p_api_days"] == 0
    assert lists[-1]["p_n"] > lists[-2]["p_n"]


@pytest.mark.slow
def test_later_events_do_not_change_earlier_features(scenario: pa.Table, whole: pa.Table) -> None:
    cut = TEST_DAY + timedelta(hours=12)
    early = scenario.filter(pc.less(scenario["event_time"], pa.scalar(cut, pa.timestamp("us", tz="UTC"))))
    only_early = features(early, START, TEST_DAY + timedelta(days=1))
    expected = whole.filter(pc.less(whole["event_time"], pa.scalar(cut, pa.timestamp("us", tz="UTC"))))
    assert only_early.equals(expected)


@pytest.mark.slow
def test_pieces_equal_the_whole(scenario: pa.Table, whole: pa.Table) -> None:
    mid = TEST_DAY + timedelta(hours=10, minutes=7)  # inside bob's burst
    first = features(scenario, START, mid)
    second = features(scenario, mid, TEST_DAY + timedelta(days=1))
    assert pa.concat_tables([first, second]).equals(whole)


@pytest.mark.slow
def test_forget_window_drops_old_days() -> None:
    t0 = datetime(2025, 2, 3, 9, tzinfo=UTC)
    rows = [{"event_time": t0 + timedelta(days=d), "principal": ALICE, "event_name": "ListBuckets"} for d in range(10)]
    rows.append({"event_time": t0, "principal": ALICE, "event_name": "GetObject"})
    rows.append({"event_time": t0 + timedelta(days=9, hours=1), "principal": ALICE, "event_name": "GetObject"})
    out = features(make_events(rows), t0 + timedelta(days=9), t0 + timedelta(days=10), forget_days=5)
    get = [r for r in out.to_pylist() if r["event_name"] == "GetObject"]
    assert get[0]["p_api_n"] == 0  # seen 9 days ago: forgotten with a 5-day window
    lists = [r for r in out.to_pylist() if r["event_name"] == "ListBuckets"]
    assert lists[0]["p_api_n"] == 5
    assert lists[0]["p_api_days"] == 5


def test_enough_data_gates(whole: pa.Table) -> None:
    first_day = whole.filter(pc.less(whole["event_time"], pa.scalar(START + timedelta(days=1))))
    assert all(first_day["gated_account"].to_pylist())
    newbie = rows_of(whole, NEWBIE)
    assert newbie[0]["gated_principal"]
    assert not newbie[0]["gated_account"]
    assert newbie[0]["p_age_days"] == 0
    assert not rows_of(whole, BOB)[-1]["gated_principal"]


def test_frequency_classes_and_principal_counts(whole: pa.Table) -> None:
    alice = rows_of(whole, ALICE)
    attack = [r for r in alice if r["event_time"] >= TEST_DAY]
    by_name = {r["event_name"]: r for r in attack}
    assert by_name["ListBuckets"]["p_api_freq"] == "frequent"
    assert by_name["StopLogging"]["p_api_freq"] == "unseen"
    assert by_name["CreateUser"]["a_api_principals"] == 0
    assert by_name["ListBuckets"]["p_asn_n"] == 0
    assert by_name["ListBuckets"]["a_asn_n"] == 0
    assert by_name["ListBuckets"]["p_hour_days"] == 0
    # carol's CreateUser comes after alice's on the same day: the account count sees alice's.
    carol = rows_of(whole, CAROL, "CreateUser")
    assert carol[0]["a_api_n"] == 1
    assert carol[0]["a_api_principals"] == 0


def test_volume_and_error_features(whole: pa.Table) -> None:
    burst = [r for r in rows_of(whole, BOB, "GetObject") if r["event_time"] >= TEST_DAY]
    assert burst[-1]["p_hour_count"] == len(burst) - 1
    assert burst[-1]["p_how_mean"] == pytest.approx(3.0, rel=0.01)  # 3 calls at this hour, 3 weeks
    errors = [r for r in whole.to_pylist() if r["error_code"] == "AccessDenied"]
    assert [r["err_distinct_15m"] for r in errors] == list(range(1, 9))
    assert errors[0]["a_err_n"] == 0
    assert errors[1]["a_err_n"] == 1


def test_an_sso_person_is_one_across_accounts_and_an_iam_user_is_not() -> None:
    sso = "role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DeveloperAccess_0be60a5d800f328a"
    day1, day2 = START + timedelta(hours=15), START + timedelta(days=1, hours=15)
    rows = []
    for account, when in (("111111111111", day1), ("222222222222", day2)):
        role = f"arn:aws:iam::{account}:{sso}"
        user = f"arn:aws:iam::{account}:user/alice"
        rows += [
            {"event_time": when, "account_id": account, "principal": role, "actor": f"{role}/ava@example.com"},
            {"event_time": when, "account_id": account, "principal": user},
        ]
    events = make_events(
        {**r, "event_source": "sqs.amazonaws.com", "event_name": "SetQueueAttributes", "source_ip": "198.51.100.7"}
        for r in rows
    )
    table = features(events, START, START + timedelta(days=2))
    second = {r["principal"]: r for r in table.to_pylist() if r["account_id"] == "222222222222"}
    role_b, user_b = f"arn:aws:iam::222222222222:{sso}", "arn:aws:iam::222222222222:user/alice"
    # the person used the API the day before, in the other account: not new for her
    assert second[role_b]["person"] == f"{sso.removesuffix('_0be60a5d800f328a')}/ava@example.com"
    assert (second[role_b]["x_api_days"], second[role_b]["p_api_days"]) == (1, 0)
    # two IAM users named alice in two accounts are two people
    assert (second[user_b]["person"], second[user_b]["x_api_days"]) == (user_b, 0)
