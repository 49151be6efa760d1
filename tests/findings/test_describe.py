"""describe(): usual/unusual evidence from history strictly before, explanations naming real values.

Runs on the real invictus-ir Stratus Red Team capture (../shared/data/real), ingested with the
real ingest pipeline (enrichment included), and findings built by hand from its events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from rich.console import Console

from trailsight.finding import Finding
from trailsight.findings.describe import describe, frequency_class
from trailsight.findings.names import finding_type_for
from trailsight.findings.render import finding_view
from trailsight.scoring.policy import severity_for

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
INVICTUS = REAL / "invictus-ir_aws_dataset" / "CloudTrail"
BERT = "arn:aws:iam::123837392027:user/bert-jan"
ATTACK_APIS = ("DeleteTrail", "StopLogging", "CreateAccessKey", "CreateUser", "PutBucketPolicy", "CreateLoginProfile")


@pytest.fixture(scope="module")
def store(invictus_store: Path) -> Path:
    return invictus_store


@pytest.fixture
def con(invictus_lake: Any) -> Any:
    return invictus_lake


def _finding(con: duckdb.DuckDBPyConnection, fid: str, where: str, params: list[Any], **changes: Any) -> Finding:
    rows = con.execute(
        f"SELECT event_id, epoch_us(event_time), principal, account_id FROM events WHERE {where} "
        "ORDER BY event_time, event_id",
        params,
    ).fetchall()
    assert rows, where
    times = [datetime.fromtimestamp(r[1] / 1e6, tz=UTC) for r in rows]
    base = Finding(
        id=fid,
        finding_type="",
        title="",
        principal=rows[0][2],
        actor=rows[0][2],
        account_id=rows[0][3],
        identity_type="",
        first_seen=min(times),
        last_seen=max(times),
        count=len(rows),
        score=0.9,
        risk_score=80,
        severity=0.0,
        severity_label="",
        confidence="",
        tactic=None,
        tactic_id=None,
        technique=None,
        event_ids=[r[0] for r in rows],
        reasons=[],
    )
    return replace(base, **changes)


def _attack(con: duckdb.DuckDBPyConnection) -> Finding:
    names = ", ".join(f"'{n}'" for n in ATTACK_APIS)
    return _finding(con, "attack", f"principal = ? AND event_name IN ({names})", [BERT])


def test_explanation_names_the_actual_unusual_values(con: duckdb.DuckDBPyConnection) -> None:
    f = describe([_attack(con)], con)[0]
    text = "\n".join(f.explanation)
    assert f.explanation[0].startswith("bert-jan (IAMUser) made 17 unusual calls to 6 APIs (defense evasion)")
    assert "192.168.10.20" in f.explanation[0]
    principals_before = con.execute(
        "SELECT count(DISTINCT actor) FROM events WHERE event_time < ?", [f.first_seen]
    ).fetchone()
    assert principals_before is not None
    for api in ("DeleteTrail", "StopLogging", "CreateAccessKey"):
        assert f"bert-jan has never called {api} in " in text
    assert f"none of the {principals_before[0]} principals in this account has" in text
    assert "4 calls failed with TrailNotFoundException, never before for bert-jan" in text
    unusual = {(u.attribute, u.value): u for u in f.unusual}
    stop = unusual[("api", "StopLogging")]
    assert stop.unusual_for_principal
    assert stop.unusual_for_account
    assert stop.principals_in_account_using == 0
    # Tactic, type, severity and confidence come from the enriched events when the finding has none.
    assert f.tactic == "DefenseEvasion"
    assert f.finding_type == f"{f.tactic}:IAMUser/AnomalousBehavior"
    assert 1.0 <= f.severity <= 8.9
    assert f.confidence == "Low"  # minutes of history only
    assert {a.event_name for a in f.anomalous_apis} == set(ATTACK_APIS)
    stop_call = next(a for a in f.anomalous_apis if a.event_name == "StopLogging")
    assert (stop_call.success, stop_call.failure, stop_call.error_codes) == (0, 3, {"TrailNotFoundException": 3})
    assert [n.ip for n in f.networks] == ["192.168.10.20"]
    assert f.networks[0].ip_kind == "private"
    assert len(f.timeline) == 17
    assert all(t.unusual for t in f.timeline)


def test_usual_values_come_strictly_from_before_first_seen(con: duckdb.DuckDBPyConnection) -> None:
    # bert-jan's calls in the last 20 minutes: its usual APIs are counted only before them.
    cut = datetime(2023, 7, 10, 12, 15, tzinfo=UTC)
    f = describe([_finding(con, "late", "principal = ? AND event_time >= ?", [BERT, cut])], con)[0]
    expected = dict(
        con.execute(
            "SELECT event_name, count(*) FROM events WHERE principal = ? AND event_time < ? GROUP BY 1",
            [BERT, f.first_seen],
        ).fetchall()
    )
    assert f.usual_apis_principal
    for e in f.usual_apis_principal:
        assert e.count == expected[e.value]
    assert len(f.usual_apis_principal) == min(20, len(expected))
    top = max(expected.items(), key=lambda kv: (kv[1], kv[0]))
    assert f.usual_apis_principal[0].value == top[0] or f.usual_apis_principal[0].count == top[1]
    # An API seen only inside the finding is unseen for the principal, never counted from itself.
    inside = dict(
        con.execute(
            "SELECT event_name, count(*) FROM events WHERE principal = ? AND event_time >= ? GROUP BY 1", [BERT, cut]
        ).fetchall()
    )
    only_inside = sorted(set(inside) - set(expected))
    assert only_inside
    unusual = {u.value for u in f.unusual if u.attribute == "api" and u.unusual_for_principal}
    assert set(only_inside) <= unusual


def test_batched_equals_one_by_one(con: duckdb.DuckDBPyConnection) -> None:
    principals = [r[0] for r in con.execute("SELECT DISTINCT principal FROM events ORDER BY 1").fetchall()]
    findings = []
    for i, p in enumerate(principals[:8]):
        recent = (
            "principal = ? AND event_time >= "
            "(SELECT max(event_time) FROM events WHERE principal = ?) - INTERVAL 5 MINUTE"
        )
        findings.append(_finding(con, f"f{i}", recent, [p, p]))
    together = describe(findings, con)
    alone = [describe([f], con)[0] for f in findings]
    assert together == alone


def test_detection_fields_are_kept(con: duckdb.DuckDBPyConnection) -> None:
    f = replace(
        _attack(con),
        tactic="Impact",
        tactic_id="TA0040",
        severity=8.1,
        severity_label="High",
        confidence="Medium",
        title="set by detection",
        explanation=["bert-jan made 17 unusual call(s).", "34 distinct error messages within 15 minutes"],
    )
    d = describe([f], con)[0]
    assert (d.tactic, d.severity, d.severity_label, d.confidence, d.title) == (
        "Impact",
        8.1,
        "High",
        "Medium",
        "set by detection",
    )
    assert d.finding_type == "Impact:IAMUser/AnomalousBehavior"
    assert d.explanation[-1] == "34 distinct error messages within 15 minutes"
    assert "bert-jan made 17 unusual call(s)." not in d.explanation  # said better by our first line


def test_hostile_values_render_safely(con: duckdb.DuckDBPyConnection) -> None:
    f = describe([_attack(con)], con)[0]
    evil = replace(
        f,
        title="[bold red]pwned[/] <script>alert(1)</script>",
        user_agents=['=HYPERLINK("http://evil")\n\x1b[31mred', "A" * 100_000],
        explanation=[*f.explanation, "line with [link=http://x]markup[/link] and a\nnewline"],
    )
    console = Console(width=100, record=True, color_system=None)
    with console.capture() as cap:
        console.print(finding_view(evil.to_dict()))
    out = cap.get()
    assert "[bold red]pwned[/]" in out  # shown literally, not interpreted
    assert "<script>alert(1)</script>" in out
    assert "[link=http://x]markup[/link]" in out
    assert "\x1b" not in out
    assert "\\x1b[31mred" in out
    assert "\\n" in out
    assert "(100,000 chars)" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_pure_helpers() -> None:
    assert frequency_class(0, 0, 0, 60) == "unseen"
    assert frequency_class(50, 40, 9, 62) == "frequent"  # most weeks
    assert frequency_class(3, 3, 3, 62) == "infrequent"  # ~1.5 days a month
    assert frequency_class(1, 1, 1, 62) == "rare"
    # Under a month of history, "4+ days a month" takes 4+ days: not 2-3 days of 11 (jonas's hours).
    assert frequency_class(86, 3, 2, 10.6) == "infrequent"
    assert frequency_class(63, 2, 1, 10.6) == "infrequent"
    assert frequency_class(62, 4, 2, 10.6) == "frequent"
    assert frequency_class(1, 1, 1, 10.6) == "infrequent"  # never rare: rare/unseen decide "unusual"
    assert frequency_class(9, 1, 1, 0.03) == "frequent"  # every day of 40 minutes of history
    assert frequency_class(9, 3, 1, 2.5) == "frequent"  # every day of a 3-day history
    assert severity_for("Impact", 1.0) == 8.9
    assert 4.0 <= severity_for("Discovery", 0.9) < 7.0
    assert severity_for(None, 0.1) < 4.0
    assert finding_type_for(None, "AssumedRole") == "Unusual:AssumedRole/AnomalousBehavior"
    assert finding_type_for("Persistence", "Root") == "Persistence:Root/AnomalousBehavior"


def test_peer_and_automation_reasons_are_marked(con: duckdb.DuckDBPyConnection) -> None:
    from trailsight.finding import Reason

    reasons = [
        Reason(
            detector="density",
            code="rare_for_peers",
            score=0.8,
            message="2 of 11 developers call StopLogging",
            details={"peers_using": 2},
        ),
        Reason(
            detector="volume",
            code="spike",
            score=0.5,
            message="looks scripted",
            details={"automation_likelihood": 0.9},
        ),
    ]
    d = describe([replace(_attack(con), reasons=reasons)], con)[0]
    assert "(peer comparison) 2 of 11 developers call StopLogging" in d.explanation
    assert "(automation) looks scripted" in d.explanation


def test_detect_over_the_detonation_raises_bert_jan_gated(store: Path, con: duckdb.DuckDBPyConnection) -> None:
    from datetime import timedelta

    from trailsight.features.source import lake_day_range
    from trailsight.findings.session import MAX_SESSION_EVENTS
    from trailsight.pipeline import detect
    from trailsight.store.layout import StoreLayout

    days = lake_day_range(StoreLayout(store))
    assert days is not None
    since = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    until = datetime(days[1].year, days[1].month, days[1].day, tzinfo=UTC) + timedelta(days=1)
    findings = detect(store, since, until, save=False)
    bert = [f for f in findings if f.principal == BERT and not f.is_story]
    assert len(bert) == 1
    f = bert[0]
    # The detonation made users, keys and role sessions that acted: one story holds it all.
    story = next(s for s in findings if s.is_story and f.id in s.members)
    assert f.story_id == story.id
    # Minutes of history only: raised through the enough-data gate, because the APIs are high-risk.
    assert f.gated
    assert f.confidence == "Low"
    assert any("enough-data gate" in line for line in f.explanation)
    ids = {r[0] for r in con.execute("SELECT event_id FROM events WHERE principal = ?", [BERT]).fetchall()}
    assert f.event_ids
    # Its unusual events first, then the other calls of its own session(s) in the burst.
    assert len(set(f.event_ids)) == len(f.event_ids) > f.count
    assert set(f.event_ids) <= ids
    rest = f.event_ids[f.count :]
    assert len(rest) <= MAX_SESSION_EVENTS
    keys = con.execute(
        f"SELECT DISTINCT access_key_id FROM events WHERE event_id IN ({', '.join('?' * len(rest))})", rest
    ).fetchall()
    assert {k for (k,) in keys} <= set(f.access_keys)
    apis = {
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT event_name FROM events WHERE event_id IN ({', '.join('?' * len(f.event_ids))})",
            f.event_ids,
        ).fetchall()
    }
    assert {"DeleteTrail", "StopLogging", "CreateAccessKey"} <= apis
    assert since <= f.first_seen <= f.last_seen < until


def test_behaviour_model_reasons_become_one_peer_line_and_one_automation_line(con: duckdb.DuckDBPyConnection) -> None:
    from trailsight.finding import Reason

    def model(api: str, using: int) -> Reason:
        details = {"api": api, "peers": 5, "peers_using": using, "peer_group": "u/ana, u/ben, u/cy"}
        if using:
            details["peers_using_names"] = "u/ben"
        return Reason(
            detector="behaviour_model", code="unlikely_api", score=0.9, message=f"{api} per-API", details=details
        )

    reasons = [
        model("cloudtrail:StopLogging", 0),
        model("iam:CreateUser", 0),
        model("ec2:DescribeInstances", 1),
        Reason(
            detector="automation_misuse",
            code="automation_outside_aws",
            score=0.95,
            message="an automation identity (100% likely a machine) was used from OVH outside AWS",
            details={"automation": 1.0, "how": "from OVH outside AWS"},
        ),
    ]
    f = replace(_attack(con), reasons=reasons, explanation=[r.message for r in reasons])
    lines = describe([f], con)[0].explanation
    assert "(peers) none of bert-jan's 5 closest peers (ana, ben, cy and 2 more) call StopLogging, CreateUser" in lines
    assert "(peers) 1 of bert-jan's 5 closest peers (ben) calls DescribeInstances, so it weighs less" in lines
    auto = [line for line in lines if line.startswith("(automation)")]
    assert auto == [
        "(automation) bert-jan behaves like automation (100% likely a machine, from its history): "
        "used from OVH outside AWS; its working hours are not held against it"
    ]
    assert not any(line.endswith("per-API") for line in lines)  # summed up, not repeated


def _hour_context(hours: dict[str, tuple[int, int, int]], history_days: float, active_days: int) -> Any:
    """A describe context with only the principal's hour history: hour -> (events, days, weeks)."""
    from trailsight.findings.describe import _Context, _Stats

    return _Context(
        events=[],
        values={"hour": Counter({"08": 1})},
        event_values={},
        principal_stats={("hour", h): _Stats(n, d, w) for h, (n, d, w) in hours.items()},
        account_stats={("hour", "08"): _Stats(100, 11, 2, 7)},
        account_usual={},
        history_days=history_days,
        history_events=sum(n for n, _, _ in hours.values()),
        active_days=active_days,
        account_history_days=history_days,
        account_principals=31,
    )


# jonas.vogel in the demo store: 10 active days in 10.6 days of history, never at 08:00 UTC.
JONAS_HOURS = {
    "15": (86, 3, 2),
    "19": (63, 2, 2),
    "17": (62, 4, 2),
    "00": (56, 3, 2),
    "23": (22, 3, 2),
    "22": (12, 2, 1),
}


_JONAS = Finding(
    id="h",
    finding_type="",
    title="",
    principal="arn:aws:iam::1:user/jonas",
    actor="arn:aws:iam::1:user/jonas",
    account_id="1",
    identity_type="IAMUser",
    first_seen=datetime(2025, 2, 14, 8, 42, tzinfo=UTC),
    last_seen=datetime(2025, 2, 14, 8, 44, tzinfo=UTC),
    count=1,
    score=0.9,
    risk_score=90,
    severity=0.0,
    severity_label="",
    confidence="",
    tactic=None,
    tactic_id=None,
    technique=None,
    event_ids=[],
    reasons=[],
)


def _hour_line(ctx: Any) -> str:
    from trailsight.findings.describe import _attribute_lines, _unusual_attributes

    f = _JONAS
    unusual = _unusual_attributes(f, ctx)
    (line,) = _attribute_lines(f, ctx, unusual, "jonas")
    return line


def test_hour_line_counts_history_in_calendar_days_and_says_active_days() -> None:
    line = _hour_line(_hour_context(JONAS_HOURS, 10.6, 10))
    assert line.startswith("active at 08:00 UTC, an hour jonas has never worked in 11 days of history;")
    assert line.endswith("of its 10 active days)")
    rarely = _hour_line(_hour_context({**JONAS_HOURS, "08": (1, 1, 1)}, 40.0, 20))
    assert rarely.startswith("active at 08:00 UTC, an hour jonas worked in on only 1 of its 20 active days in 40 days")
    assert _hour_line(_hour_context({"08": (1, 1, 1)}, 40.0, 20)).endswith(
        "of its 20 active days in 40 days of history"
    )


def test_usual_hours_are_the_hours_of_most_active_days_as_in_the_table() -> None:
    ctx = _hour_context(JONAS_HOURS, 10.6, 10)
    # 15:00 has the most calls (86 on 3 days) but 17:00 is seen on the most days (4); ties go by calls.
    assert _hour_line(ctx).endswith(
        "; usually active around 17:00, 15:00 and 00:00 UTC (on 4, 3 and 3 of its 10 active days)"
    )
    from trailsight.findings.describe import _unusual_attributes

    (hour,) = [u for u in _unusual_attributes(replace(_JONAS, id="t"), ctx) if u.attribute == "hour"]
    table = [(e.value, e.days, e.frequency) for e in hour.principal_usual]
    # No hour seen on 4+ days: the hours seen most are not called "usual".
    few = _hour_context({"21": (51, 3, 2), "20": (50, 2, 2)}, 11.5, 9)
    assert _hour_line(few).endswith("; most often active around 21:00 and 20:00 UTC (on 3 and 2 of its 9 active days)")
    assert table[:3] == [("17", 4, "frequent"), ("15", 3, "infrequent"), ("00", 3, "infrequent")]


def test_peer_lines_say_when_the_group_is_cut_and_agree_in_number() -> None:
    from trailsight.finding import Reason
    from trailsight.findings.describe import _peer_notes

    def model(api: str, peers: int, group: str, using: int = 0, names: str = "") -> Reason:
        details = {"api": api, "peers": peers, "peers_using": using, "peer_group": group, "peers_using_names": names}
        return Reason(detector="behaviour_model", code="unlikely_api", score=0.9, message=api, details=details)

    def notes(*reasons: Reason) -> list[str]:
        return _peer_notes(replace(_JONAS, reasons=list(reasons)))

    assert notes(model("iam:CreateUser", 3, "u/ana, u/ben, u/cy")) == [
        "(peers) none of jonas's 3 closest peers (ana, ben, cy) call CreateUser"
    ]
    assert notes(model("iam:CreateUser", 1, "u/ana"), model("ec2:DescribeVpcs", 1, "u/ana", 1, "u/ana")) == [
        "(peers) jonas's one close peer (ana) does not call CreateUser",
        "(peers) jonas's one close peer (ana) calls DescribeVpcs, so it weighs less",
    ]
    # Four of five peers use it, three are named: the line says so.
    assert notes(model("ec2:DescribeVpcs", 5, "u/ana, u/ben, u/cy", 4, "u/ana, u/ben, u/cy")) == [
        "(peers) 4 of jonas's 5 closest peers (ana, ben, cy and 1 more) call DescribeVpcs, so it weighs less"
    ]


def test_peers_in_other_accounts_say_which_account() -> None:
    from trailsight.finding import Reason
    from trailsight.findings.describe import _peer_notes

    group = "arn:aws:iam::2:role/terraform-apply, arn:aws:iam::1:user/ken"
    details = {"api": "iam:AttachUserPolicy", "peers": 2, "peers_using": 0, "peer_group": group}
    reason = Reason(detector="behaviour_model", code="unlikely_api", score=0.9, message="m", details=details)
    f = replace(_JONAS, principal="arn:aws:iam::1:role/terraform-apply", reasons=[reason])
    assert _peer_notes(f) == [
        "(peers) none of role terraform-apply's 2 closest peers (role terraform-apply (account 2), ken) "
        "call AttachUserPolicy"
    ]
