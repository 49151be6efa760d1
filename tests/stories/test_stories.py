"""Attack stories: a chain across two accounts, low-and-slow signals, suppression, stable ids."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from storykit import finding as _finding

from trailsight.config import Settings
from trailsight.errors import ConfigError, StoreError
from trailsight.features.source import connect, open_events, quiet_ibis
from trailsight.finding import Finding
from trailsight.findings.suppress import SuppressionRule, apply_suppressions, rule_from_finding
from trailsight.store import lineage
from trailsight.store.layout import StoreLayout
from trailsight.stories import fold
from trailsight.stories.correlate import MAX_FANOUT, build_stories, story_id
from trailsight.stories.options import StoryOptions
from trailsight.stories.risk import poisson_tail

A, B = "111111111111", "222222222222"
ALICE = f"arn:aws:iam::{A}:user/alice"
DEPLOYER = f"arn:aws:iam::{B}:role/deployer"
ADMIN = f"arn:aws:iam::{B}:role/admin"
BACKDOOR = f"arn:aws:iam::{B}:user/backdoor"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPTIONS = StoryOptions()


def _record(n: int, account: str, identity: dict[str, Any], name: str, source: str, **kw: Any) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": (T0 + timedelta(minutes=10 * n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": kw.get("request"),
        "responseElements": kw.get("response"),
        "eventID": f"00000000-0000-0000-0000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    }


def _session(account: str, role: str, session: str, key: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROA:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            }
        },
    }


def _assume(
    n: int, account: str, identity: dict[str, Any], target: str, role: str, session: str, key: str
) -> dict[str, Any]:
    return _record(
        n,
        account,
        identity,
        "AssumeRole",
        "sts.amazonaws.com",
        request={"roleArn": f"arn:aws:iam::{target}:role/{role}", "roleSessionName": session},
        response={
            "credentials": {"accessKeyId": key, "expiration": "Mar 2, 2026, 10:00:00 AM"},
            "assumedRoleUser": {"arn": f"arn:aws:sts::{target}:assumed-role/{role}/{session}"},
        },
    )


@pytest.fixture(scope="module")
def chain_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice (account A) → role deployer in B → role admin in B → a key for a new user backdoor → used."""
    from trailsight.ingest import ingest

    alice = {"type": "IAMUser", "arn": ALICE, "accountId": A, "accessKeyId": "AKIAALICE0000000", "userName": "alice"}
    records = [
        _assume(1, A, alice, B, "deployer", "s1", "ASIADEPLOYER0001"),
        _assume(2, B, _session(B, "deployer", "s1", "ASIADEPLOYER0001"), B, "admin", "s2", "ASIAADMIN0000002"),
        _record(
            3,
            B,
            _session(B, "admin", "s2", "ASIAADMIN0000002"),
            "CreateUser",
            "iam.amazonaws.com",
            request={"userName": "backdoor"},
            response={"user": {"userName": "backdoor", "arn": BACKDOOR}},
        ),
        _record(
            4,
            B,
            _session(B, "admin", "s2", "ASIAADMIN0000002"),
            "CreateAccessKey",
            "iam.amazonaws.com",
            request={"userName": "backdoor"},
            response={"accessKey": {"accessKeyId": "AKIABACKDOOR0001", "userName": "backdoor"}},
        ),
        _record(
            5,
            B,
            {
                "type": "IAMUser",
                "arn": BACKDOOR,
                "accountId": B,
                "accessKeyId": "AKIABACKDOOR0001",
                "userName": "backdoor",
            },
            "ListBuckets",
            "s3.amazonaws.com",
        ),
    ]
    logs = tmp_path_factory.mktemp("chain-logs")
    (logs / "trail.json").write_text(json.dumps({"Records": records}))
    root = tmp_path_factory.mktemp("chain-store")
    ingest([logs], root, workers=0)
    return root


def _chain_links(store: Path) -> list[lineage.Link]:
    return lineage.links_from_lake(StoreLayout(store), T0 - timedelta(days=1), T0 + timedelta(days=1))


def test_lineage_follows_a_role_chain_across_two_accounts(chain_store: Path) -> None:
    links = _chain_links(chain_store)
    assert [(x.link, x.account_id, x.child_account) for x in links] == [
        ("assume_role", A, B),
        ("assume_role", B, B),
        ("user", B, B),
        ("access_key", B, B),
    ]
    assert links[0].parent == ALICE
    assert links[0].child == f"{DEPLOYER}/s1"
    assert links[1].parent == f"{DEPLOYER}/s1"
    assert links[3].child == lineage.user_node(B, "backdoor")
    assert links[3].child_key == "AKIABACKDOOR0001"


def test_lineage_from_a_calls_view_is_the_lakes(chain_store: Path) -> None:
    # What detect reads (the engine's calls view, here the local engine's lake view) gives the
    # links the lake's reader gives; a view holding only the lineage calls (the Spark engine's
    # raw path hands the driver no more) gives them too, and a narrower range fewer.
    layout = StoreLayout(chain_store)
    since, until = T0 - timedelta(days=1), T0 + timedelta(days=1)
    con = connect()
    try:
        with quiet_ibis():
            open_events(con, layout, since, until, 90)
        assert lineage.links_from_view(con, "events", since, until) == _chain_links(chain_store)
        db = con.con
        db.execute(f"CREATE TEMP TABLE only_lineage AS SELECT * FROM events WHERE {lineage.LINEAGE_CALLS}")
        assert lineage.links_from_view(db, "only_lineage", since, until) == _chain_links(chain_store)
        later = T0 + timedelta(minutes=15)
        assert lineage.links_from_view(db, "only_lineage", later, until) == [
            x for x in _chain_links(chain_store) if x.event_time >= later
        ]
        with pytest.raises(StoreError):
            lineage.links_from_view(db, "events; DROP TABLE x", since, until)
    finally:
        con.disconnect()


def _chain_findings(alice_score: float) -> tuple[Finding, Finding, Finding]:
    """The chain's three findings: alice's (scored ``alice_score``), the admin session's, backdoor's."""
    alice = _finding("f-alice", ALICE, T0, alice_score, tactic="InitialAccess", keys=("AKIAALICE0000000",))
    admin = _finding(
        "f-admin",
        ADMIN,
        T0 + timedelta(minutes=20),
        0.7,
        actor=f"{ADMIN}/s2",
        tactic="Persistence",
        keys=("ASIAADMIN0000002",),
    )
    backdoor = _finding("f-back", BACKDOOR, T0 + timedelta(hours=3), 0.6, keys=("AKIABACKDOOR0001",))
    return alice, admin, backdoor


def test_a_chain_across_two_accounts_is_one_story_naming_every_principal(chain_store: Path) -> None:
    links = _chain_links(chain_store)
    alice, admin, backdoor = _chain_findings(0.55)
    stories, members = build_stories([alice, admin, backdoor], [], links, OPTIONS, run_days=1.0)
    assert len(stories) == 1
    story = stories[0]
    assert story.finding_type == "AttackSequence:IAM/CompromisedCredentials"
    assert story.title.startswith("Attack story: alice, ")
    assert set(story.principals) == {ALICE, f"{ADMIN}/s2", BACKDOOR}
    assert story.members == ["f-alice", "f-admin", "f-back"]
    assert {m.story_id for m in members} == {story.id}
    assert story.severity_label == "Critical"
    assert story.severity >= 9.0
    assert [s.time for s in story.steps] == sorted(s.time for s in story.steps)
    # Who acted is named person first: the admin role's session as "s2 via admin", not "role s2".
    assert story.explanation[0].startswith("7 steps by 3 principal(s) (alice, s2 via admin, backdoor) over 1 day(s)")
    assert "; s2 via admin created access key AKIABACKDOOR0001 for user backdoor." in story.explanation[1]
    whats = [s.what for s in story.steps if s.kind == "lineage"]
    assert "created access key AKIABACKDOOR0001 for user backdoor" in whats
    assert any(w.startswith("assumed role deployer (session s1) in account 222222222222") for w in whats)
    assert {"AKIAALICE0000000", "ASIAADMIN0000002", "AKIABACKDOOR0001", "ASIADEPLOYER0001"} <= set(story.access_keys)
    # Every step's events are the story's.
    assert {e for s in story.steps for e in s.event_ids} == set(story.event_ids)
    assert fold([story, *members]) == [story]


def test_a_story_names_its_first_raised_member_not_an_earlier_weak_signal(chain_store: Path) -> None:
    """alice's first step is below the alert level; the story is about who raised it: the admin session."""
    links = _chain_links(chain_store)
    alice, admin, backdoor = _chain_findings(0.3)
    stories, _ = build_stories([admin, backdoor], [alice], links, OPTIONS, run_days=1.0)
    assert len(stories) == 1
    story = stories[0]
    assert ALICE in story.principals  # the weak step is in the story
    assert story.first_seen == T0
    assert (story.principal, story.actor, story.account_id) == (ADMIN, f"{ADMIN}/s2", B)
    assert story.id == story_id("f-alice")  # the id stays the earliest unit's, as the story grows


def test_without_the_lineage_the_principals_stay_apart() -> None:
    alice = _finding("f-alice", ALICE, T0, 0.55, keys=("AKIAALICE0000000",))
    backdoor = _finding("f-back", BACKDOOR, T0 + timedelta(hours=3), 0.6, keys=("AKIABACKDOOR0001",))
    stories, members = build_stories([alice, backdoor], [], [], OPTIONS, run_days=1.0)
    assert stories == []
    assert all(m.story_id is None for m in members)


def test_a_key_seen_under_another_identity_links_nothing(chain_store: Path) -> None:
    links = _chain_links(chain_store)
    alice = _finding("f-alice", ALICE, T0, 0.55, keys=("AKIAALICE0000000",))
    # The backdoor key, but used by some other user: not the identity it was made for.
    other = _finding(
        "f-other", f"arn:aws:iam::{B}:user/carol", T0 + timedelta(hours=3), 0.6, keys=("AKIABACKDOOR0001",)
    )
    stories, _ = build_stories([alice, other], [], links, OPTIONS, run_days=1.0)
    assert stories == []


def test_a_broker_handing_out_many_sessions_joins_nobody() -> None:
    broker = f"arn:aws:iam::{A}:role/sso-broker"
    links = [
        lineage.Link(
            event_id=f"e{i}",
            link="assume_role",
            event_time=T0,
            account_id=A,
            api="AssumeRole",
            parent=broker,
            parent_key=None,
            source_ip=None,
            child=f"arn:aws:iam::{A}:role/dev/user{i}",
            child_key=None,
            child_account=A,
            detail=None,
        )
        for i in range(MAX_FANOUT + 1)
    ]
    one = _finding("f1", f"arn:aws:iam::{A}:role/dev", T0, 0.6, actor=f"arn:aws:iam::{A}:role/dev/user0")
    two = _finding("f2", f"arn:aws:iam::{A}:role/dev", T0, 0.6, actor=f"arn:aws:iam::{A}:role/dev/user1")
    assert build_stories([one, two], [], links, OPTIONS, run_days=1.0)[0] == []
    assert len(build_stories([one, two], [], links[:2], OPTIONS, run_days=1.0)[0]) == 1


def _low_and_slow(n: int, score: float = 0.4) -> list[Finding]:
    times = [T0 + timedelta(hours=9 * i) for i in range(n)]  # over three days, nights included
    return [_finding(f"w{i}", ALICE, t, score, tactic="Collection") for i, t in enumerate(times)]


# A run where nine other actors raised one finding each and had no weak signals.
OTHERS = [_finding(f"o{i}", f"arn:aws:iam::{A}:user/other{i}", T0, 0.6) for i in range(9)]


def test_low_and_slow_signals_below_the_alert_level_add_up_to_one_story() -> None:
    weak = _low_and_slow(6)
    assert all(w.score < 0.5 for w in weak)  # each alone below the default alert level
    stories, members = build_stories(OTHERS, weak, [], OPTIONS, run_days=3.0)
    assert all(m.story_id is None for m in members)
    assert len(stories) == 1
    story = stories[0]
    assert story.finding_type == "AttackSequence:IAM/AccumulatedRisk"
    assert story.members == []  # weak signals are steps, not saved findings
    assert [s.kind for s in story.steps] == ["signal"] * 6
    assert any(
        line.startswith("12 unusual calls in 6 bursts on 3 days, each alone below the alert level: ListBuckets;")
        for line in story.explanation
    )
    assert story.score >= 0.5
    # Fewer signals, or one day only, or an actor for whom that many is usual: no story.
    assert build_stories(OTHERS, weak[:2], [], OPTIONS, run_days=3.0)[0] == []
    same_day = [
        replace(w, first_seen=T0 + timedelta(minutes=i), last_seen=T0 + timedelta(minutes=i))
        for i, w in enumerate(weak)
    ]
    assert build_stories(OTHERS, same_day, [], OPTIONS, run_days=3.0)[0] == []
    assert build_stories(OTHERS, weak, [], OPTIONS, run_days=3.0, history={ALICE: 4.0})[0] == []
    # Alone in the run, its own signals are the only measure of what is usual: no story.
    assert build_stories([], weak, [], OPTIONS, run_days=3.0)[0] == []


def test_the_poisson_tail() -> None:
    assert poisson_tail(0, 2.0) == 1.0
    assert poisson_tail(1, 0.0) == 0.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 2.718281828**-2.0)
    assert poisson_tail(6, 0.5) < 1e-4


def test_a_suppressed_member_still_joins_its_story_and_only_a_story_rule_hides_the_story() -> None:
    first = _finding("f1", ALICE, T0, 0.6, tactic="Discovery")
    second = _finding("f2", ALICE, T0 + timedelta(days=1), 0.7, tactic="Persistence")
    rule = SuppressionRule(principal=(ALICE,), source="rules.toml#1")
    members = apply_suppressions([first, second], [rule])
    assert {m.status for m in members} == {"Suppressed"}
    stories, linked = build_stories(members, [], [], OPTIONS, run_days=2.0)
    assert len(stories) == 1
    assert stories[0].members == ["f1", "f2"]
    assert any("suppressed or triaged; they still count" in line for line in stories[0].explanation)
    # The principal's rule does not hide the story ...
    assert apply_suppressions(stories, [rule])[0].status == "Open"
    # ... a rule naming the story type does, and so does a verdict on the story.
    by_type = SuppressionRule(principal=(ALICE,), finding_type=("AttackSequence:*",), source="rules.toml#2")
    assert apply_suppressions(stories, [by_type])[0].status == "Suppressed"
    verdict = rule_from_finding(stories[0])
    assert apply_suppressions(stories, [verdict])[0].status == "Suppressed"
    assert verdict.matches(linked[0]) is False


def test_a_growing_story_keeps_its_id() -> None:
    first = _finding("f1", ALICE, T0, 0.6, tactic="Discovery")
    second = _finding("f2", ALICE, T0 + timedelta(days=1), 0.7, tactic="Persistence")
    third = _finding("f3", ALICE, T0 + timedelta(days=2), 0.65, tactic="Exfiltration")
    one = build_stories([first, second], [], [], OPTIONS, run_days=2.0)[0][0]
    two = build_stories([first, second, third], [], [], OPTIONS, run_days=3.0)[0][0]
    assert one.id == two.id == story_id("f1")
    assert len(two.steps) == 3
    assert two.score > one.score
    # Beyond the window they are two stories, or none.
    late = replace(third, first_seen=T0 + timedelta(days=30), last_seen=T0 + timedelta(days=30))
    assert len(build_stories([first, second, late], [], [], OPTIONS, run_days=31.0)[0]) == 1


def test_the_same_public_address_joins_two_principals_unless_many_share_it() -> None:
    one = _finding("f1", ALICE, T0, 0.6, ips=("198.51.100.9",))
    two = _finding("f2", BACKDOOR, T0 + timedelta(hours=1), 0.6, ips=("198.51.100.9",))
    stories = build_stories([one, two], [], [], OPTIONS, run_days=1.0)[0]
    assert [s.finding_type for s in stories] == ["AttackSequence:IAM/SharedNetwork"]
    crowd = [_finding(f"c{i}", f"arn:aws:iam::{A}:user/u{i}", T0, 0.3, ips=("198.51.100.9",)) for i in range(4)]
    assert build_stories([one, two], crowd, [], OPTIONS, run_days=1.0)[0] == []
    off = StoryOptions(network_links=False)
    assert build_stories([one, two], [], [], off, run_days=1.0)[0] == []


def test_story_options_from_settings() -> None:
    s = Settings(path=Path("t.toml"), data={"stories": {"window_days": 7, "network_links": False}})
    assert StoryOptions.from_settings(s) == StoryOptions(window_days=7.0, network_links=False)
    for bad in ({"window_days": -1}, {"network_links": 1}, {"min_signals": 2.5}, {"alpha": 1.5}, {"nope": 1}):
        with pytest.raises(ConfigError, match=r"t\.toml: \[stories\]"):
            StoryOptions.from_settings(Settings(path=Path("t.toml"), data={"stories": bad}))


def test_what_a_made_identity_did_joins_the_story_even_when_nothing_of_it_was_unusual(chain_store: Path) -> None:
    from trailsight.stories.follow import follow_ups

    links = _chain_links(chain_store)
    uses = follow_ups(StoreLayout(chain_store), links, T0 + timedelta(days=1))
    by_principal = {u.principal: u for u in uses}
    backdoor = by_principal[BACKDOOR]
    assert backdoor.access_keys == ["AKIABACKDOOR0001"]
    assert backdoor.count == 1
    assert backdoor.title == "backdoor: 1 call(s): ListBuckets"
    # admin (raised) made the user and its key; the user's one quiet call still joins the story.
    admin = _finding("f-admin", ADMIN, T0 + timedelta(minutes=20), 0.7, actor=f"{ADMIN}/s2", keys=("ASIAADMIN0000002",))
    stories, _ = build_stories([admin], [], links, OPTIONS, run_days=1.0, uses=[backdoor])
    assert len(stories) == 1
    assert BACKDOOR in stories[0].principals
    assert set(backdoor.event_ids) <= set(stories[0].event_ids)
    assert [s.kind for s in stories[0].steps if s.actor == BACKDOOR] == ["use"]
    assert stories[0].members == ["f-admin"]
