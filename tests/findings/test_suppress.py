"""Suppression rules (TOML file, CIDR, ASN, globs, expiry) and feedback from dismissed findings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trailsight.errors import ConfigError
from trailsight.finding import ApiCall, Finding, NetworkInfo, UnusualAttribute
from trailsight.findings.suppress import (
    apply_suppressions,
    feedback_rules,
    finding_apis,
    load_rules,
    rule_from_finding,
)
from trailsight.store.findings import save_findings, set_status

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def make_finding(fid: str = "f1", **changes: object) -> Finding:
    base = Finding(
        id=fid,
        finding_type="Discovery:AssumedRole/AnomalousBehavior",
        title="backup role listed buckets",
        principal="arn:aws:iam::111122223333:role/backup",
        actor="arn:aws:iam::111122223333:role/backup",
        account_id="111122223333",
        identity_type="AssumedRole",
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=3),
        count=3,
        score=0.6,
        risk_score=55,
        severity=5.0,
        severity_label="Medium",
        confidence="Medium",
        tactic="Discovery",
        tactic_id="TA0007",
        technique="T1580",
        event_ids=["e1", "e2", "e3"],
        reasons=[],
        anomalous_apis=[
            ApiCall(service="s3", event_name="ListBuckets", success=2, failure=0),
            ApiCall(service="ec2", event_name="DescribeSnapshots", success=1, failure=0),
        ],
        networks=[NetworkInfo(ip="10.1.2.3", ip_kind="private", events=3)],
        user_agents=["aws-sdk-go/1.44.0 (go1.20; linux; amd64)"],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.toml"
    p.write_text(text)
    return p


def test_rules_file_matching_cidr_glob_and_all_values(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            """
            [[suppress]]
            principal = "backup"
            api = ["List*", "Describe*"]
            cidr = "10.0.0.0/8"
            user_agent = "aws-sdk-go/*"
            reason = "nightly backup job"
            """,
        )
    )
    assert len(rules) == 1
    f = make_finding()
    out = apply_suppressions([f], rules, NOW)
    assert out[0].status == "Suppressed"
    assert out[0].explanation[-1] == f"Suppressed by {tmp_path / 'rules.toml'}#1 (nightly backup job)."
    assert f.status == "Open"  # input untouched
    # One public address among the networks: not every value matches, so it is raised.
    public = make_finding(networks=[*f.networks, NetworkInfo(ip="203.0.113.9", asn=14061)])
    assert apply_suppressions([public], rules, NOW)[0].status == "Open"
    # An API outside the globs: raised.
    extra = make_finding(
        anomalous_apis=[*f.anomalous_apis, ApiCall(service="iam", event_name="CreateUser", success=1, failure=0)]
    )
    assert apply_suppressions([extra], rules, NOW)[0].status == "Open"
    # Another principal: raised.
    other = make_finding(
        principal="arn:aws:iam::111122223333:role/backup-admin", actor="arn:aws:iam::111122223333:role/backup-admin"
    )
    assert apply_suppressions([other], rules, NOW)[0].status == "Open"


def test_asn_ip_account_and_expiry(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            """
            [[suppress]]
            asn = ["AS14061", 16509]
            ip = "10.1.2.3"
            account = 111122223333
            reason = "scanner"
            expires = 2024-05-31

            [[suppress]]
            principal = "arn:aws:iam::*:role/ci-*"
            expires = 2024-07-01T00:00:00Z
            """,
        )
    )
    f = make_finding(networks=[NetworkInfo(ip="203.0.113.9", asn=14061), NetworkInfo(ip="10.1.2.3")])
    before = datetime(2024, 5, 31, 23, 0, tzinfo=UTC)
    assert apply_suppressions([f], rules, before)[0].status == "Suppressed"
    assert apply_suppressions([f], rules, NOW)[0].status == "Open"  # expired on 2024-05-31 end of day
    ci = make_finding(principal="arn:aws:iam::999:role/ci-deploy", actor="arn:aws:iam::999:role/ci-deploy")
    assert apply_suppressions([ci], rules, NOW)[0].status == "Suppressed"
    assert apply_suppressions([ci], rules, datetime(2024, 7, 2, tzinfo=UTC))[0].status == "Open"
    # Triaged findings keep their status.
    assert apply_suppressions([replace(ci, status="Malicious")], rules, NOW)[0].status == "Malicious"


def test_ipv6_and_non_ip_source(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, '[[suppress]]\ncidr = ["2001:db8::/32", "10.0.0.0/8"]\n'))
    v6 = make_finding(networks=[NetworkInfo(ip="2001:db8::1")])
    assert apply_suppressions([v6], rules, NOW)[0].status == "Suppressed"
    internal = make_finding(networks=[NetworkInfo(ip="AWS Internal")])
    assert apply_suppressions([internal], rules, NOW)[0].status == "Open"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[suppress]]\nreason = 'x'\n", "at least one"),
        ("[[suppress]]\ncidr = '10.0.0.300/8'\n", "not an IP address"),
        ("[[suppress]]\nasn = 'Comcast'\n", "not an AS number"),
        ("[[suppress]]\nprincipl = 'x'\n", "unknown key"),
        ("[[suppress]]\nprincipal = 'x'\nexpires = 'soon'\n", "expires"),
        ("suppress = 3\n", "array of tables"),
        ("[rules]\n", "unknown top-level"),
        ("[[suppress]\n", "not valid TOML"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load_rules(write(tmp_path, text))
    assert "rules.toml" in str(info.value)
    assert "\n" not in str(info.value).strip()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_rules(tmp_path / "nope.toml")


def test_feedback_round_trip_suppresses_same_pattern_only(tmp_path: Path) -> None:
    assert feedback_rules(tmp_path) == []  # no state yet
    first = make_finding("d1")
    save_findings(tmp_path, [first, make_finding("m1", principal="arn:aws:iam::111122223333:user/eve")])
    set_status(tmp_path, "d1", "Dismissed", "backup job, benign")
    set_status(tmp_path, "m1", "Dismissed", "oops")
    set_status(tmp_path, "m1", "Malicious", "actually bad")
    rules = feedback_rules(tmp_path)
    assert [r.source for r in rules] == ["feedback:d1"]
    assert rules[0].reason == "dismissed as benign: backup job, benign"
    # The same pattern next week: suppressed.
    again = make_finding("d2", first_seen=T0 + timedelta(days=7), last_seen=T0 + timedelta(days=7))
    # A subset of the APIs: still the same pattern.
    subset = make_finding("d3", anomalous_apis=first.anomalous_apis[:1])
    # New API or new network for that principal: raised.
    new_api = make_finding(
        "d4", anomalous_apis=[ApiCall(service="iam", event_name="CreateAccessKey", success=1, failure=0)]
    )
    new_net = make_finding("d5", networks=[NetworkInfo(ip="198.51.100.1", asn=14061)])
    # Same APIs by another principal: raised.
    other = make_finding(
        "d6", principal="arn:aws:iam::111122223333:role/web", actor="arn:aws:iam::111122223333:role/web"
    )
    out = {f.id: f.status for f in apply_suppressions([again, subset, new_api, new_net, other], rules, NOW)}
    assert out == {"d2": "Suppressed", "d3": "Suppressed", "d4": "Open", "d5": "Open", "d6": "Open"}


def test_feedback_rule_is_per_actor_on_shared_roles() -> None:
    role = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123"
    ava = make_finding("a", principal=role, actor=f"{role}/ava@example.com")
    bob = make_finding("b", principal=role, actor=f"{role}/bob@example.com")
    rule = rule_from_finding(ava)
    assert rule.principal == (f"{role}/ava@example.com",)
    assert rule.matches(ava)
    assert not rule.matches(bob)


def test_rule_from_finding_escapes_glob_characters() -> None:
    f = make_finding(anomalous_apis=[ApiCall(service="x", event_name="Get*[x]", success=1, failure=0)])
    rule = rule_from_finding(f)
    assert rule.matches(f)
    g = make_finding(anomalous_apis=[ApiCall(service="x", event_name="GetAnything[x]", success=1, failure=0)])
    assert not rule.matches(g)
    assert finding_apis(f) == ["Get*[x]"]


def _calls(*names: str) -> list[ApiCall]:
    return [ApiCall(service="x", event_name=n, success=1, failure=0) for n in names]


def _unusual(*pairs: tuple[str, str]) -> list[UnusualAttribute]:
    return [
        UnusualAttribute(attribute=a, value=v, unusual_for_principal=True, unusual_for_account=False) for a, v in pairs
    ]


def test_feedback_suppresses_the_next_session_of_a_dismissed_traveller(tmp_path: Path) -> None:
    # A traveller's finding: unusual only for where it came from; its API list is every everyday
    # call made from the hotel. The next session calls a few other everyday APIs: same pattern.
    toronto = [NetworkInfo(ip="64.87.104.48", asn=812)]
    where = _unusual(("asn", "AS812 Rogers"), ("city", "Toronto, CA"))
    first = make_finding(
        "t1", anomalous_apis=_calls("ListTables", "DescribeTable", "GetBucketAcl"), networks=toronto, unusual=where
    )
    save_findings(tmp_path, [first])
    set_status(tmp_path, "t1", "Dismissed", "travelling to Toronto")
    rules = feedback_rules(tmp_path)
    later = T0 + timedelta(hours=3)
    again = make_finding(
        "t2",
        first_seen=later,
        last_seen=later,
        networks=[NetworkInfo(ip="66.242.103.35", asn=812)],
        anomalous_apis=_calls("ListTables", "DescribeImages", "GetCallerIdentity"),
        unusual=where,
    )
    # Something new for the principal from the same place: raised.
    new_api = replace(
        again,
        id="t3",
        anomalous_apis=_calls("ListTables", "CreateAccessKey"),
        unusual=[*where, *_unusual(("api", "CreateAccessKey"))],
    )
    # The same calls from a new network: raised.
    new_net = replace(again, id="t4", networks=[NetworkInfo(ip="91.121.126.86", asn=16276)])
    # Not described (no unusual attributes): every API must be among the dismissed ones, as before.
    bare = replace(again, id="t5", unusual=[])
    out = {f.id: f.status for f in apply_suppressions([again, new_api, new_net, bare], rules, NOW)}
    assert out == {"t2": "Suppressed", "t3": "Open", "t4": "Open", "t5": "Open"}


def test_the_pipeline_judges_expiry_at_the_findings_time(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, '[[suppress]]\naccount = "111122223333"\nexpires = 2024-03-31\n'))
    march, april = (
        make_finding("m"),
        make_finding("a", first_seen=T0 + timedelta(days=40), last_seen=T0 + timedelta(days=40)),
    )
    # A re-run today over March's logs meets the rule as it stood in March.
    assert [f.status for f in apply_suppressions([march, april], rules)] == ["Suppressed", "Open"]
    assert [f.status for f in apply_suppressions([march, april], rules, NOW)] == ["Open", "Open"]


def test_verdict_on_a_shared_role_burst_does_not_hide_one_persons_findings() -> None:
    role = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123"
    where = _unusual(("asn", "AS7018 AT&T"))
    both = make_finding(
        "r1",
        principal=role,
        actor=role,
        session_names=["ava@example.com", "bob@example.com"],
        networks=[NetworkInfo(ip="32.28.234.27", asn=7018)],
        unusual=where,
    )
    rule = rule_from_finding(both)
    later = T0 + timedelta(hours=2)
    ava = replace(both, id="r2", actor=f"{role}/ava@example.com", first_seen=later, last_seen=later)
    again = replace(both, id="r3", first_seen=later, last_seen=later)
    out = {f.id: f.status for f in apply_suppressions([ava, again], [rule], NOW)}
    assert out == {"r2": "Open", "r3": "Suppressed"}
