"""The findings store: upsert, analyst status, filters, feedback, hostile values, concurrent readers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from trailsight.errors import StoreError
from trailsight.finding import Evidence, Finding, NetworkInfo, TimelineEntry, UnusualAttribute
from trailsight.store.findings import (
    connect_state,
    count_findings,
    feedback_for,
    finding_from_dict,
    get_finding,
    list_findings,
    save_findings,
    set_status,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def make_finding(fid: str = "f1", **changes: object) -> Finding:
    base = Finding(
        id=fid,
        finding_type="Persistence:IAMUser/AnomalousBehavior",
        title="alice created an access key",
        principal="arn:aws:iam::111122223333:user/alice",
        actor="arn:aws:iam::111122223333:user/alice",
        account_id="111122223333",
        identity_type="IAMUser",
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=5),
        count=2,
        score=0.8,
        risk_score=80,
        severity=7.5,
        severity_label="High",
        confidence="High",
        tactic="Persistence",
        tactic_id="TA0003",
        technique="T1098.001",
        event_ids=["e1", "e2"],
        reasons=[],
        unusual=[
            UnusualAttribute(
                attribute="api",
                value="CreateAccessKey",
                unusual_for_principal=True,
                unusual_for_account=False,
                principal_usual=[Evidence(value="ListBuckets", count=40, days=20, frequency="frequent")],
            )
        ],
        networks=[NetworkInfo(ip="198.51.100.7", asn=14061, as_org="DigitalOcean", country="DE", events=2)],
        timeline=[
            TimelineEntry(
                event_id="e1",
                event_time=T0,
                event_name="CreateAccessKey",
                service="iam",
                error_code=None,
                source_ip="198.51.100.7",
                unusual=True,
                score=0.9,
            )
        ],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_round_trip_and_from_dict(tmp_path: Path) -> None:
    f = make_finding()
    assert save_findings(tmp_path, [f]) == 1
    got = get_finding(tmp_path, "f1")
    assert got == f.to_dict()
    assert finding_from_dict(got) == f
    assert get_finding(tmp_path, "nope") is None


def test_upsert_keeps_analyst_status_and_extends(tmp_path: Path) -> None:
    save_findings(tmp_path, [make_finding()])
    set_status(tmp_path, "f1", "dismissed", "known admin task")
    later = make_finding(last_seen=T0 + timedelta(hours=1), event_ids=["e2", "e3"], count=2)
    save_findings(tmp_path, [later])
    got = get_finding(tmp_path, "f1")
    assert got is not None
    assert got["status"] == "Dismissed"
    assert got["event_ids"] == ["e1", "e2", "e3"]
    assert got["count"] == 3
    assert got["first_seen"] == "2024-03-01T12:00:00Z"
    assert got["last_seen"] == "2024-03-01T13:00:00Z"
    # A suppression rule never overrides a verdict (Dismissed, Malicious), only an acknowledgement.
    save_findings(tmp_path, [make_finding(status="Suppressed")])
    assert get_finding(tmp_path, "f1")["status"] == "Dismissed"  # type: ignore[index]
    set_status(tmp_path, "f1", "Acknowledged", "looking again")
    save_findings(tmp_path, [make_finding(status="Suppressed")])
    assert get_finding(tmp_path, "f1")["status"] == "Suppressed"  # type: ignore[index]
    set_status(tmp_path, "f1", "Malicious", "confirmed")
    save_findings(tmp_path, [make_finding(status="Suppressed")])
    assert get_finding(tmp_path, "f1")["status"] == "Malicious"  # type: ignore[index]
    # An open one is replaced by the new status.
    save_findings(tmp_path, [make_finding("f2")])
    save_findings(tmp_path, [make_finding("f2", status="Suppressed")])
    assert get_finding(tmp_path, "f2")["status"] == "Suppressed"  # type: ignore[index]


def test_filters_and_ordering(tmp_path: Path) -> None:
    findings = [
        make_finding("a", risk_score=90, severity_label="High", tactic="Persistence"),
        make_finding(
            "b",
            risk_score=50,
            severity_label="Medium",
            tactic="Discovery",
            first_seen=T0 + timedelta(days=2),
            last_seen=T0 + timedelta(days=2),
        ),
        make_finding(
            "c",
            risk_score=20,
            severity_label="Low",
            tactic=None,
            principal="arn:aws:iam::111122223333:role/ci",
            actor="arn:aws:iam::111122223333:role/ci",
            account_id="999988887777",
        ),
    ]
    save_findings(tmp_path, findings)
    assert [f["id"] for f in list_findings(tmp_path)] == ["a", "b", "c"]
    assert [f["id"] for f in list_findings(tmp_path, order_by="first_seen")] == ["a", "c", "b"]
    assert [f["id"] for f in list_findings(tmp_path, severity="high,medium")] == ["a", "b"]
    assert [f["id"] for f in list_findings(tmp_path, tactic="discovery")] == ["b"]
    assert [f["id"] for f in list_findings(tmp_path, tactic="none")] == ["c"]
    assert [f["id"] for f in list_findings(tmp_path, principal="alice")] == ["a", "b"]
    assert [f["id"] for f in list_findings(tmp_path, principal="ci")] == ["c"]
    assert [f["id"] for f in list_findings(tmp_path, account="999988887777")] == ["c"]
    assert [f["id"] for f in list_findings(tmp_path, since=T0 + timedelta(days=1))] == ["b"]
    assert [f["id"] for f in list_findings(tmp_path, until=T0 + timedelta(days=1))] == ["a", "c"]
    assert [f["id"] for f in list_findings(tmp_path, limit=1, offset=1)] == ["b"]
    assert count_findings(tmp_path, severity="Low") == 1
    assert count_findings(tmp_path) == 3
    with pytest.raises(StoreError, match="order_by"):
        list_findings(tmp_path, order_by="risk; DROP TABLE findings")


def test_hostile_values_are_data_not_sql(tmp_path: Path) -> None:
    evil = "x' OR 1=1; DROP TABLE findings; --"
    big = "A" * 100_000
    f = make_finding(
        "h1", principal=evil, title='<script>alert(1)</script>\n=HYPERLINK("http://x")', user_agents=[big, "[bold]x"]
    )
    save_findings(tmp_path, [f])
    assert list_findings(tmp_path, principal=evil)[0]["title"].startswith("<script>")
    assert list_findings(tmp_path, principal="%") == []
    got = get_finding(tmp_path, "h1")
    assert got is not None
    assert got["user_agents"][0] == big
    assert finding_from_dict(got) == f


def test_status_and_feedback(tmp_path: Path) -> None:
    save_findings(tmp_path, [make_finding()])
    set_status(tmp_path, "f1", "Acknowledged", "looking")
    set_status(tmp_path, "f1", "dismiss".replace("dismiss", "Dismissed"), "benign: backup job")
    rows = feedback_for(tmp_path, "f1")
    assert [r["action"] for r in rows] == ["Acknowledged", "Dismissed"]
    assert rows[1]["reason"] == "benign: backup job"
    assert rows[1]["at"].endswith("Z")
    assert feedback_for(tmp_path, action="Dismissed")[0]["finding_id"] == "f1"
    assert count_findings(tmp_path, status="Dismissed") == 1
    with pytest.raises(StoreError, match="not in"):
        set_status(tmp_path, "missing", "Dismissed", "x")
    with pytest.raises(StoreError, match="status"):
        set_status(tmp_path, "f1", "Suppressed", "x")


def test_missing_store_and_empty_db(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no state database"):
        list_findings(tmp_path / "nowhere")
    duckdb.connect(str(tmp_path / "state.duckdb")).close()
    assert list_findings(tmp_path) == []
    assert feedback_for(tmp_path) == []
    assert get_finding(tmp_path, "x") is None


def test_readers_in_other_processes_while_not_writing(tmp_path: Path) -> None:
    save_findings(tmp_path, [make_finding(), make_finding("f2", risk_score=10)])
    code = textwrap.dedent(
        f"""
        from trailsight.store.findings import list_findings
        print(len(list_findings({str(tmp_path)!r})))
        """
    )
    with connect_state(tmp_path, read_only=True) as con:  # a reader holds the file open here
        assert con.execute("SELECT count(*) FROM findings").fetchone() == (2,)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs == ["2", "2"]
    # After the readers close, a writer can open it again.
    set_status(tmp_path, "f2", "Acknowledged", "seen")
    assert get_finding(tmp_path, "f2")["status"] == "Acknowledged"  # type: ignore[index]


def test_writer_waits_for_another_process_holding_the_lock(tmp_path: Path) -> None:
    save_findings(tmp_path, [make_finding()])
    holder = textwrap.dedent(
        f"""
        import sys, time, duckdb
        con = duckdb.connect({str(tmp_path / "state.duckdb")!r})
        print("locked", flush=True)
        time.sleep(1.5)
        con.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        set_status(tmp_path, "f1", "Acknowledged", "waited for the lock")  # retries until the holder exits
    finally:
        proc.wait(timeout=30)
    assert get_finding(tmp_path, "f1")["status"] == "Acknowledged"  # type: ignore[index]
