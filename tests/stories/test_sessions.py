"""What a story holds: a session's own calls, the credential a weak signal joins by, machine credentials used outside.

Hand-made CloudTrail records ingested into a real store (DuckDB over the Parquet lake).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from storykit import finding

from trailsight.finding import Finding, NetworkInfo, Reason
from trailsight.findings.session import MAX_SESSION_EVENTS, add_session_calls
from trailsight.store import lake, lineage
from trailsight.store.layout import StoreLayout
from trailsight.stories.correlate import build_stories
from trailsight.stories.follow import address_uses
from trailsight.stories.options import StoryOptions

ACCT = "111111111111"
SSO = f"arn:aws:iam::{ACCT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123"
FATIMA = f"{SSO}/fatima@example.com"
LAMBDA = f"arn:aws:iam::{ACCT}:role/service-role/users-handler-role"
LAMBDA_SESSION = f"{LAMBDA}/users-handler"
DEPLOY = f"arn:aws:iam::{ACCT}:role/deploy"
NEWCOMER = f"arn:aws:iam::{ACCT}:user/newcomer"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GAP = timedelta(minutes=30)
OUTSIDE_IP = "198.51.100.50"
OPTIONS = StoryOptions()


def _sso(key: str) -> dict[str, Any]:
    return _role_identity(SSO, "fatima@example.com", key)


def _role_identity(role_arn: str, session: str, key: str) -> dict[str, Any]:
    role = role_arn.rsplit("/", 1)[-1]
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/{role}/{session}",
        "accountId": ACCT,
        "accessKeyId": key,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": ACCT, "userName": role}},
    }


def _call(eid: str, at: datetime, identity: dict[str, Any], name: str, ip: str = "203.0.113.7") -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": None,
        "responseElements": None,
        "eventID": eid,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCT,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ransomware-like session (key ASIARANSOM), another session of the same person, a stolen Lambda key."""
    from trailsight.ingest import ingest

    records = [_call("ransom-0", T0, _sso("ASIARANSOM000001"), "DeleteObject")]
    # The session's ordinary-looking calls around its unusual one, the last 20 minutes after it.
    records += [
        _call(f"ransom-{i}", T0 + timedelta(minutes=i), _sso("ASIARANSOM000001"), "GetObject") for i in (1, 2, 3)
    ]
    records.append(_call("ransom-late", T0 + timedelta(minutes=20), _sso("ASIARANSOM000001"), "PutObject"))
    records.append(_call("ransom-next-day", T0 + timedelta(days=1), _sso("ASIARANSOM000001"), "PutObject"))
    # The same person in another session (another key) at the same time: not this session.
    records.append(_call("other-session", T0 + timedelta(minutes=2), _sso("ASIAOTHER0000002"), "ListBuckets"))
    # A Lambda role's key used from outside AWS; from that address, another role's session 3 minutes
    # later; two hours later someone else from there (another burst).
    lam = _role_identity(LAMBDA, "users-handler", "ASIALAMBDA000001")
    records.append(_call("lambda-0", T0 + timedelta(hours=5), lam, "ListObjects", OUTSIDE_IP))
    deploy = _role_identity(DEPLOY, "d190d14a", "ASIADEPLOY000001")
    records.append(_call("deploy-0", T0 + timedelta(hours=5, minutes=3), deploy, "ListBuckets", OUTSIDE_IP))
    later = {"type": "IAMUser", "arn": NEWCOMER, "accountId": ACCT, "accessKeyId": "AKIANEW", "userName": "newcomer"}
    records.append(_call("later-0", T0 + timedelta(hours=7), later, "ListBuckets", OUTSIDE_IP))
    logs = tmp_path_factory.mktemp("session-logs")
    (logs / "trail.json").write_text(json.dumps({"Records": records}))
    root = tmp_path_factory.mktemp("session-store")
    ingest([logs], root, workers=0)
    return root


@pytest.fixture
def events(store: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    lake.open_events(con, StoreLayout(store), T0 - timedelta(days=1), T0 + timedelta(days=3)).create_view("events")
    yield con
    con.close()


def _finding(fid: str, actor: str, t: datetime, score: float, *, principal: str | None = None, **kw: Any) -> Finding:
    return finding(fid, principal or actor, t, score, actor=actor, **kw)


def _made_newcomer(parent: str, parent_key: str, at: datetime) -> lineage.Link:
    """``parent`` (with ``parent_key``) created the user ``newcomer`` at ``at``."""
    return lineage.Link(
        event_id="create-user",
        link="user",
        event_time=at,
        account_id=ACCT,
        api="CreateUser",
        parent=parent,
        parent_key=parent_key,
        source_ip="203.0.113.7",
        child=lineage.user_node(ACCT, "newcomer"),
        child_key=None,
        child_account=ACCT,
        detail=None,
    )


def test_a_finding_carries_every_call_of_its_session_in_the_burst(events: duckdb.DuckDBPyConnection) -> None:
    f = _finding("f", FATIMA, T0, 0.8, principal=SSO, keys=("ASIARANSOM000001",), event_ids=("ransom-0",))
    [out] = add_session_calls([f], events, "events", GAP)
    # Unusual events first, then the session's other calls within the gap, in time order.
    assert out.event_ids == ["ransom-0", "ransom-1", "ransom-2", "ransom-3", "ransom-late"]
    assert out.count == f.count
    assert out.score == f.score
    # A shorter gap keeps less of the burst; another session of the same person is never in it.
    [short] = add_session_calls([f], events, "events", timedelta(minutes=5))
    assert short.event_ids == ["ransom-0", "ransom-1", "ransom-2", "ransom-3"]
    assert "other-session" not in out.event_ids
    assert "ransom-next-day" not in out.event_ids
    # Without a key (a console sign-in), the actor on the finding's own addresses is the session.
    keyless = replace(f, access_keys=[], networks=[NetworkInfo(ip="203.0.113.7", ip_kind="public", events=1)])
    [by_ip] = add_session_calls([keyless], events, "events", GAP)
    assert set(by_ip.event_ids) == {"ransom-0", "ransom-1", "ransom-2", "ransom-3", "ransom-late", "other-session"}
    assert MAX_SESSION_EVENTS >= 254  # a ransomware run's few hundred calls fit


def test_a_sessions_earlier_weak_signal_and_what_it_made_stay_out_of_its_story() -> None:
    """An admin's ordinary onboarding days before (another session) is not part of her session's attack."""
    raised = _finding("attack", FATIMA, T0 + timedelta(days=6), 0.9, principal=SSO, keys=("ASIARANSOM000001",))
    onboarding = _finding("onboard", FATIMA, T0, 0.3, principal=SSO, keys=("ASIAOTHER0000002",), tactic="Persistence")
    newcomer = [
        _finding(f"new{i}", NEWCOMER, T0 + timedelta(days=i, hours=1), 0.3, keys=("AKIANEW",)) for i in range(1, 5)
    ]
    made = _made_newcomer(FATIMA, "ASIAOTHER0000002", T0)
    stories, _ = build_stories([raised], [onboarding, *newcomer], [made], OPTIONS, run_days=7.0)
    assert all("attack" not in s.members for s in stories)
    # Made by the attacking session itself (its key), the same user and what it did join the story.
    by_attack = replace(made, parent_key="ASIARANSOM000001", event_time=raised.first_seen)
    late = [replace(f, first_seen=raised.first_seen + timedelta(hours=1)) for f in newcomer[:1]]
    joined, _ = build_stories([raised], late, [by_attack], OPTIONS, run_days=7.0)
    assert [s.members for s in joined] == [["attack"]]
    assert NEWCOMER in joined[0].principals
    # Weak signals of one role session still add up among themselves (accumulated risk).
    alone = [
        _finding(f"w{i}", FATIMA, T0 + timedelta(days=i), 0.3, principal=SSO, keys=(f"ASIAK{i}",)) for i in range(4)
    ]
    many = [_finding(f"o{i}", f"arn:aws:iam::{ACCT}:user/o{i}", T0, 0.2) for i in range(30)]
    acc, _ = build_stories([], [*alone, *many], [], OPTIONS, run_days=7.0)
    assert [s.finding_type for s in acc] == ["AttackSequence:IAM/AccumulatedRisk"]
    assert {f"w{i}-e1" for i in range(4)} <= set(acc[0].event_ids)


def test_a_storys_events_are_its_evidence_and_other_weak_signals_stay_context() -> None:
    user = f"arn:aws:iam::{ACCT}:user/emeka"
    weak = _finding("weak", user, T0, 0.3, keys=("AKIAEMEKA",), tactic="Discovery")
    raised = _finding("raised", user, T0 + timedelta(days=3), 0.7, keys=("AKIAEMEKA2",), tactic="Impact")
    [story], _ = build_stories([raised], [weak], [], OPTIONS, run_days=4.0)
    assert [s.kind for s in story.steps] == ["signal", "finding"]
    assert story.steps[0].event_ids == ["weak-e1", "weak-e2"]
    assert story.event_ids == ["raised-e1", "raised-e2"]
    # A weak signal with the raised member's own key is the same credential: evidence.
    same_key = replace(weak, access_keys=["AKIAEMEKA2"])
    [story2], _ = build_stories([raised], [same_key], [], OPTIONS, run_days=4.0)
    assert story2.event_ids == ["weak-e1", "weak-e2", "raised-e1", "raised-e2"]


def test_a_machine_roles_credentials_used_outside_link_what_came_from_that_address(store: Path) -> None:
    outside = Reason(detector="automation_misuse", code="automation_outside_aws", score=0.9, message="m")
    stolen = _finding(
        "stolen",
        LAMBDA_SESSION,
        T0 + timedelta(hours=5),
        0.8,
        principal=LAMBDA,
        keys=("ASIALAMBDA000001",),
        ips=(OUTSIDE_IP,),
        event_ids=("lambda-0",),
        reasons=(outside,),
    )
    [link] = lineage.outside_uses([stolen, replace(stolen, id="x", reasons=[])])
    assert (link.link, link.parent, link.child, link.child_key, link.source_ip) == (
        "outside_use",
        LAMBDA,
        LAMBDA_SESSION,
        "ASIALAMBDA000001",
        OUTSIDE_IP,
    )
    uses = address_uses(StoreLayout(store), [link], GAP, OPTIONS.max_network_actors)
    # The other role's session 3 minutes later joins; the caller two hours later is another burst.
    assert [(u.actor, u.event_ids) for u in uses] == [(f"{DEPLOY}/d190d14a", ["deploy-0"])]
    [story], _ = build_stories([stolen], [], [link], OPTIONS, run_days=1.0, uses=uses)
    assert set(story.principals) == {LAMBDA_SESSION, f"{DEPLOY}/d190d14a"}
    assert {"lambda-0", "deploy-0"} <= set(story.event_ids)
    assert story.finding_type == "AttackSequence:IAM/CompromisedCredentials"
    [handed] = [s for s in story.steps if s.kind == "lineage"]
    assert "(key ASIALAMBDA000001) used outside their resource" in handed.what
    assert handed.network == OUTSIDE_IP
    # The role whose credentials were handed over is named as the role, not as a session of a shorter ARN.
    assert (handed.principal, handed.actor) == (LAMBDA, LAMBDA)
    role = LAMBDA.rsplit("/", 1)[-1]
    joined = f"Joined by credential lineage: role {role} had the credentials"
    assert any(line.startswith(joined) for line in story.explanation)
    assert [s.what for s in story.steps if s.kind == "use"] == ["called from that address: 1 call(s): ListBuckets"]
    # An address many actors used in that burst is a shared egress: nobody is followed from it.
    assert address_uses(StoreLayout(store), [link], GAP, 0) == []


def test_a_created_users_name_is_read_from_the_request_when_the_response_lacks_it() -> None:
    base = {
        "event_id": "e1",
        "event_time": T0,
        "account_id": ACCT,
        "actor": FATIMA,
        "access_key_id": "ASIAK",
        "source_ip": "203.0.113.7",
    }
    for api in ("CreateUser", "CreateLoginProfile", "CreateAccessKey"):
        raw: dict[str, Any] = {"requestParameters": {"userName": "backdoor"}, "responseElements": None}
        if api == "CreateAccessKey":
            raw["responseElements"] = {"accessKey": {"accessKeyId": "AKIANEWKEY"}}
        [link] = lineage.links_of({**base, "event_name": api, "raw": json.dumps(raw)})
        assert link.child == lineage.user_node(ACCT, "backdoor")


def test_a_newcomers_first_calls_are_measured_against_newcomers_not_the_established() -> None:
    """A user made in the window has every call a first: its novelty is expected, not evidence."""
    newcomer = [_finding(f"n{i}", NEWCOMER, T0 + timedelta(days=i), 0.3, keys=("AKIANEW",)) for i in range(4)]
    settled = [_finding(f"o{i}", f"arn:aws:iam::{ACCT}:user/o{i}", T0, 0.2) for i in range(30)]
    # Without lineage saying it is new, four weak signals on four days stand out against the run's rate.
    alone, _ = build_stories([], [*newcomer, *settled], [], OPTIONS, run_days=7.0)
    assert [s.principals for s in alone] == [[NEWCOMER]]
    made = _made_newcomer(f"arn:aws:iam::{ACCT}:user/hr-admin", "AKIAHR", T0 - timedelta(hours=1))
    told, _ = build_stories([], [*newcomer, *settled], [made], OPTIONS, run_days=7.0)
    assert told == []
