"""Peers, automation likelihood and account usage (trailsight.features.behaviour), and the detectors that read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pytest

from sample_events import make_events
from trailsight.detectors.automation_misuse import AutomationMisuseDetector
from trailsight.detectors.behaviour_model import BehaviourModelDetector
from trailsight.detectors.off_hours import OffHoursDetector
from trailsight.features import build_feature_table
from trailsight.features.asof import SECONDS_PER_DAY, prepare
from trailsight.features.behaviour import CONTEXT_COLUMNS, BehaviourContext, add_context, context_aggregates
from trailsight.scoring.combine import combine
from trailsight.scoring.options import ScoringOptions

ACCT = "111111111111"
START = datetime(2025, 1, 6, tzinfo=UTC)
DAYS = 14
TEST = START + timedelta(days=DAYS)


def user(name: str) -> str:
    return f"arn:aws:iam::{ACCT}:user/{name}"


ROLE = f"arn:aws:iam::{ACCT}:role/nightly-export"
DATA_APIS = [
    ("athena", "StartQueryExecution"),
    ("glue", "GetTable"),
    ("s3", "GetObject"),
    ("athena", "GetQueryResults"),
]
WEB_APIS = [("lambda", "UpdateFunctionCode"), ("apigateway", "GetRestApis"), ("logs", "FilterLogEvents")]
AWS_NET: dict[str, Any] = {
    "asn": 16509,
    "as_org": "Amazon",
    "source_ip": "3.5.6.7",
    "ip_kind": "aws",
    "ua_family": "sdk-python",
    "user_agent": "Boto3/1.34.0",
    "identity_type": "AssumedRole",
}


def _ev(when: datetime, principal: str, service: str, name: str, **kw: Any) -> dict[str, Any]:
    return {
        "event_time": when,
        "principal": principal,
        "event_source": f"{service}.amazonaws.com",
        "event_name": name,
        "ua_family": kw.pop("ua_family", "console"),
        **kw,
    }


def history() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for d in range(DAYS):
        day = START + timedelta(days=d)
        for who in ("ana", "ben", "cy"):  # the data team
            for i, (svc, api) in enumerate(DATA_APIS):
                rows.append(_ev(day + timedelta(hours=9, minutes=10 * i), user(who), svc, api))
        for who in ("dee", "eli"):  # the web team
            for i, (svc, api) in enumerate(WEB_APIS):
                rows.append(_ev(day + timedelta(hours=10, minutes=10 * i), user(who), svc, api))
        for hour in range(0, 24, 2):  # a machine, around the clock, from AWS
            rows.append(_ev(day + timedelta(hours=hour), ROLE, "s3", "PutObject", **AWS_NET))
    # ben and cy have used bedrock for a while; nobody uses kms:ScheduleKeyDeletion.
    for d in range(3, DAYS):
        for who in ("ben", "cy"):
            rows.append(_ev(START + timedelta(days=d, hours=11), user(who), "bedrock", "InvokeModel"))
    return rows


def features_for(rows: list[dict[str, Any]], since: datetime, until: datetime) -> pa.Table:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    events = ibis.memtable(make_events(rows))
    expr = build_feature_table(events, since, until)
    aggs = {name: con.to_pyarrow(e) for name, e in context_aggregates(prepare(events)).items()}
    return add_context(con.to_pyarrow(expr), BehaviourContext(aggs["pday"], aggs["papi"], forget_days=90))


@pytest.fixture(scope="module")
def test_day() -> pa.Table:
    rows = history()
    at = TEST + timedelta(hours=12)
    rows += [
        _ev(at, user("ana"), "bedrock", "InvokeModel"),  # new for ana, her peers use it
        _ev(at + timedelta(minutes=1), user("ana"), "kms", "ScheduleKeyDeletion"),  # nobody does
        _ev(at + timedelta(minutes=2), ROLE, "s3", "PutObject", **AWS_NET),
        _ev(at + timedelta(minutes=3), ROLE, "s3", "ListBuckets", **{**AWS_NET, "ip_kind": "public", "asn": 9009}),
        _ev(at + timedelta(minutes=4), ROLE, "s3", "GetObject", **{**AWS_NET, "ua_family": "console"}),
    ]
    return features_for(rows, TEST, TEST + timedelta(days=1))


def _row(table: pa.Table, principal: str, api: str) -> dict[str, Any]:
    for r in table.to_pylist():
        if r["principal"] == principal and r["api"] == api:
            return r
    raise AssertionError(f"no row for {principal} {api}")


def test_peers_are_the_principals_that_behave_alike() -> None:
    events = ibis.memtable(make_events(history()))
    aggs = {name: e.to_pyarrow() for name, e in context_aggregates(prepare(events)).items()}
    ctx = BehaviourContext(aggs["pday"], aggs["papi"], forget_days=90)
    day = int(TEST.timestamp() // SECONDS_PER_DAY)
    ana = [p for p, _ in ctx.peers_of(ACCT, user("ana"), day)]
    assert set(ana[:2]) == {user("ben"), user("cy")}
    assert user("dee") not in ana  # the web team shares no API with the data team
    assert next(p for p, _ in ctx.peers_of(ACCT, user("dee"), day)) == user("eli")


def test_automation_likelihood_tells_machines_from_people(test_day: pa.Table) -> None:
    assert _row(test_day, ROLE, "s3:PutObject")["auto_score"] == pytest.approx(1.0)
    assert _row(test_day, user("ana"), "bedrock:InvokeModel")["auto_score"] == 0.0
    assert _row(test_day, ROLE, "s3:PutObject")["p_aws_share"] == pytest.approx(1.0)


def test_peer_use_softens_a_new_api_and_nobody_using_it_does_not(test_day: pa.Table) -> None:
    soft = _row(test_day, user("ana"), "bedrock:InvokeModel")
    hard = _row(test_day, user("ana"), "kms:ScheduleKeyDeletion")
    assert soft["p_api_n"] == 0
    assert hard["p_api_n"] == 0
    assert soft["peers_using"] == 2
    assert hard["peers_using"] == 0
    assert soft["a_api_users"] == 2
    assert hard["a_api_users"] == 0
    assert "ben" in soft["peer_names"]
    assert "cy" in soft["peer_names"]
    scores = BehaviourModelDetector().score(test_day)
    by_id = dict(zip(scores.event_ids, scores.score, strict=True))
    assert by_id[hard["event_id"]] > 0.9  # one in a thousand or rarer
    assert by_id[soft["event_id"]] < 0.5 < by_id[hard["event_id"]]
    fired = dict(zip(scores.event_ids, scores.reasons, strict=True))[hard["event_id"]]
    assert "0 of its" in fired[0].message
    assert "0 other principal" in fired[0].message


def test_same_day_use_by_a_peer_counts_only_before_the_event() -> None:
    rows = [r for r in history() if r["event_name"] != "InvokeModel"]
    at = TEST + timedelta(hours=12)
    rows += [
        _ev(at, user("ana"), "bedrock", "InvokeModel"),
        _ev(at + timedelta(hours=1), user("ben"), "bedrock", "InvokeModel"),
        _ev(at + timedelta(hours=2), user("cy"), "bedrock", "InvokeModel"),
    ]
    table = features_for(rows, TEST, TEST + timedelta(days=1))
    rows_out = [r for r in table.to_pylist() if r["api"] == "bedrock:InvokeModel"]
    seen = {r["principal"]: (r["peers_using"], r["a_api_users"]) for r in rows_out}
    assert seen[user("ana")] == (0, 0)  # first in the account: nobody before her
    assert seen[user("ben")] == (1, 1)  # ana, an hour earlier
    assert seen[user("cy")] == (2, 2)


def test_context_of_a_range_in_pieces_equals_the_whole() -> None:
    rows = history()
    for d in range(3):
        rows.append(_ev(TEST + timedelta(days=d, hours=12), user("dee"), "bedrock", "InvokeModel"))
    whole = features_for(rows, TEST, TEST + timedelta(days=3)).sort_by("event_id")
    parts = [features_for(rows, TEST + timedelta(days=d), TEST + timedelta(days=d + 1)) for d in range(3)]
    pieces = pa.concat_tables(parts).sort_by("event_id")
    for col in ("auto_score", "peers_n", "peers_sim", "peers_using", "a_api_users", "a_principals"):
        assert whole.column(col).to_pylist() == pieces.column(col).to_pylist(), col


def test_automation_misuse_fires_outside_aws_and_from_the_console(test_day: pa.Table) -> None:
    scores = AutomationMisuseDetector().score(test_day)
    by_id = dict(zip(scores.event_ids, zip(scores.fired, scores.reasons, strict=True), strict=True))
    usual = by_id[_row(test_day, ROLE, "s3:PutObject")["event_id"]]
    outside = by_id[_row(test_day, ROLE, "s3:ListBuckets")["event_id"]]
    console = by_id[_row(test_day, ROLE, "s3:GetObject")["event_id"]]
    person = by_id[_row(test_day, user("ana"), "kms:ScheduleKeyDeletion")["event_id"]]
    assert not usual[0]
    assert not person[0]
    assert outside[0]
    assert outside[1][0].code == "automation_outside_aws"
    assert console[0]
    assert any(r.code == "automation_interactive" for r in console[1])


def test_working_hours_count_for_people_only(test_day: pa.Table) -> None:
    n = test_day.num_rows
    off = OffHoursDetector().score(test_day)
    forced = type(off)(off.detector, off.event_ids, np.ones(n), np.ones(n, dtype=bool), off.reasons, "context", True)
    out = combine(test_day, [forced], ScoringOptions())
    machine = np.array([p == ROLE for p in test_day.column("principal").to_pylist()])
    assert np.all(out.context[machine] == 0.0)
    assert np.all(out.context[~machine] == 1.0)


def test_peer_figures_of_an_event_alone_equal_those_among_many() -> None:
    """Each event's peer and account-user figures depend on the context and its own time only:
    worked out with many events of its (day, principal, API) group, or alone, they are the same."""
    rows = [r for r in history() if r["event_name"] != "InvokeModel" or r["principal"] != user("cy")]
    at = TEST + timedelta(hours=12)
    for k, who in enumerate(("ana", "ana", "cy", "ana", "dee", "cy", "ana")):
        rows.append(_ev(at + timedelta(minutes=20 * k), user(who), "bedrock", "InvokeModel"))
    rows.append(_ev(at, user("dee"), "kms", "ScheduleKeyDeletion"))
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    events = ibis.memtable(make_events(rows))
    features = con.to_pyarrow(build_feature_table(events, TEST, TEST + timedelta(days=1)))
    aggs = {name: con.to_pyarrow(e) for name, e in context_aggregates(prepare(events)).items()}
    context = BehaviourContext(aggs["pday"], aggs["papi"], forget_days=90)
    whole = context.augment(features)
    alone = pa.concat_tables([context.augment(features.slice(i, 1)) for i in range(features.num_rows)])
    ana = [r for r in whole.to_pylist() if r["principal"] == user("ana") and r["api"] == "bedrock:InvokeModel"]
    assert len(ana) == 4
    assert [r["peers_using"] for r in ana] == [1, 1, 2, 2]  # ben; then cy too, the same day
    assert max(r["a_api_users"] for r in ana) == 3  # ben, cy and dee by the last
    for column in CONTEXT_COLUMNS:
        assert whole.column(column).to_pylist() == alone.column(column).to_pylist(), column
