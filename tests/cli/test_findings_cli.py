"""The findings, profile and investigate commands, on a store holding the real invictus-ir capture."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from realdata import BERT, INVICTUS
from trailsight.cli.main import app, main
from trailsight.finding import Finding
from trailsight.findings.describe import describe
from trailsight.findings.suppress import feedback_rules
from trailsight.investigate.lake import open_lake
from trailsight.store.findings import feedback_for, get_finding, save_findings

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not INVICTUS.is_dir():
        pytest.skip("real data not present")
    from trailsight.ingest import ingest

    root = tmp_path_factory.mktemp("cli-store")
    ingest([INVICTUS], root, workers=0)
    with open_lake(root) as con:
        rows = con.execute(
            "SELECT event_id, epoch_us(event_time) FROM events WHERE principal = ? "
            "AND event_name IN ('DeleteTrail', 'StopLogging', 'CreateAccessKey', 'CreateUser') ORDER BY 2, 1",
            [BERT],
        ).fetchall()
        times = [datetime.fromtimestamp(r[1] / 1e6, tz=UTC) for r in rows]
        finding = Finding(
            id="ts-clitest000001",
            finding_type="",
            title="",
            principal=BERT,
            actor=BERT,
            account_id="123837392027",
            identity_type="IAMUser",
            first_seen=min(times),
            last_seen=max(times),
            count=len(rows),
            score=0.95,
            risk_score=91,
            severity=0.0,
            severity_label="",
            confidence="",
            tactic=None,
            tactic_id=None,
            technique=None,
            event_ids=[r[0] for r in rows],
            reasons=[],
        )
        described = describe([finding], con)[0]
    hostile = replace(
        described,
        id="ts-hostile000001",
        title='[bold red]owned[/] <script>alert(1)</script>\n=HYPERLINK("http://x")',
        principal="arn:aws:iam::123837392027:user/[blink]mallory[/blink]",
        actor="arn:aws:iam::123837392027:user/[blink]mallory[/blink]",
        user_agents=['=HYPERLINK("http://evil")\r\n\x1b[2J', "B" * 100_000],
        risk_score=10,
        severity=2.0,
        severity_label="Low",
    )
    save_findings(root, [described, hostile])
    return root


def test_list_table_and_jsonl(store: Path) -> None:
    result = runner.invoke(app, ["findings", "list", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "ts-clitest00" in result.output
    assert "user/bert-jan" in result.output
    assert result.output.index("ts-clitest00") < result.output.index("ts-hostile00")  # riskiest first
    result = runner.invoke(app, ["findings", "list", "--store", str(store), "--format", "jsonl", "--severity", "Low"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == ["ts-hostile000001"]
    result = runner.invoke(app, ["findings", "list", "--store", str(store), "-f", "jsonl", "--principal", "bert-jan"])
    assert [json.loads(x)["id"] for x in result.output.splitlines()] == ["ts-clitest000001"]
    result = runner.invoke(app, ["findings", "list", "--store", str(store), "--since", "2030-01-01"])
    assert "No findings match." in result.output


def test_show_reads_like_an_incident_summary(store: Path) -> None:
    result = runner.invoke(app, ["findings", "show", "ts-clitest", "--store", str(store)])
    assert result.exit_code == 0, result.output
    out = result.output
    stored = get_finding(store, "ts-clitest000001")
    assert stored is not None
    # The explanation comes first, right after the header, and names the real values.
    sections = ["What happened", "Anomalous APIs by service", "Unusual vs usual", "Network", "Timeline"]
    positions = [out.index(s) for s in sections]
    assert positions == sorted(positions)
    assert "bert-jan has never called StopLogging" in out
    assert "TrailNotFoundException" in out
    assert "192.168.10.20" in out
    assert f"Severity {stored['severity_label']}" in out
    assert max(len(line) for line in out.splitlines()) <= 140


def test_show_hostile_values_do_not_break_the_terminal(store: Path) -> None:
    result = runner.invoke(app, ["findings", "show", "ts-hostile000001", "--store", str(store)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "[bold red]owned[/]" in out
    assert "[blink]mallory[/blink]" in out
    assert "<script>alert(1)</script>" in out
    assert "\x1b" not in out
    assert "\r" not in out
    assert "\\x1b[2J" in out
    assert "(100,000 chars)" in out
    assert max(len(line) for line in out.splitlines()) <= 140
    table = runner.invoke(app, ["findings", "list", "--store", str(store)])
    assert "\x1b" not in table.output
    assert "[bold red]owned[/]" in table.output
    assert "\\n=HYPERLINK" in table.output


def test_triage_round_trip_and_feedback(store: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["findings", "ack", "ts-clitest000001", "--store", str(store), "--reason", "looking"])
    assert result.exit_code == 0, result.output
    assert "Open -> Acknowledged" in result.output
    result = runner.invoke(
        app, ["findings", "dismiss", "ts-clitest000001", "--store", str(store), "--reason", "red-team exercise"]
    )
    assert result.exit_code == 0, result.output
    assert get_finding(store, "ts-clitest000001")["status"] == "Dismissed"  # type: ignore[index]
    assert [f["action"] for f in feedback_for(store, "ts-clitest000001")] == ["Acknowledged", "Dismissed"]
    rules = feedback_rules(store)
    assert [r.source for r in rules] == ["feedback:ts-clitest000001"]
    assert rules[0].principal == (BERT,)
    assert "StopLogging" in rules[0].api
    listed = runner.invoke(app, ["findings", "list", "--store", str(store), "--status", "dismissed", "-f", "jsonl"])
    assert [json.loads(x)["id"] for x in listed.output.splitlines()] == ["ts-clitest000001"]
    result = runner.invoke(app, ["findings", "reopen", "ts-clitest000001", "--store", str(store), "--reason", "oops"])
    assert result.exit_code == 0
    assert feedback_rules(store) == []


def test_errors_are_one_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in (
        (["findings", "show", "nope", "--store", str(store)], "finding 'nope': not in"),
        (["findings", "list", "--store", str(store), "--since", "yesterday"], "--since 'yesterday'"),
        (["findings", "list", "--store", str(store), "--severity", "Huge"], "--severity 'Huge'"),
        (["findings", "list", "--store", str(tmp_path)], "no state database"),
        (["findings", "dismiss", "nope", "--store", str(store), "--reason", "x"], "not in"),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("trailsight: error: ")
        assert expected in err
        assert err.count("\n") == 1


def test_export(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.jsonl"
    if importlib.util.find_spec("trailsight.findings.export") is None:
        with pytest.raises(SystemExit):
            main(["findings", "export", "--store", str(store), "-o", str(out)])
        assert "exporters not available" in capsys.readouterr().err
        return
    result = runner.invoke(app, ["findings", "export", "--store", str(store), "--format", "jsonl", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ids = {json.loads(line)["id"] for line in out.read_text().splitlines()}
    assert ids == {"ts-clitest000001", "ts-hostile000001"}


def test_profile_and_investigate(store: Path) -> None:
    result = runner.invoke(app, ["profile", "bert-jan", "--store", str(store), "-n", "5"])
    assert result.exit_code == 0, result.output
    assert "Working hours" in result.output
    mon = next(line for line in result.output.splitlines() if line.strip().startswith("Mon"))
    assert "2642" in mon
    assert "Decrypt" in result.output
    assert "frequent" in result.output
    result = runner.invoke(app, ["investigate", "principal", "bert-jan", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "Role chains" in result.output
    assert "stratus-red-team-ec2-get-password-data-role" in result.output
    assert "GetPasswordData" in result.output
    result = runner.invoke(app, ["investigate", "ip", "10.8.8.10", "--store", str(store), "-f", "json"])
    assert json.loads(result.output)["events"] == 281
    result = runner.invoke(app, ["investigate", "key", "ASIATFQR7NSCWLLE7IWW", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "Issued by" in result.output
    assert "AssumeRole" in result.output


def test_export_to_outputs(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``findings export`` sends to any output of the registry: Security Hub and SNS on moto, a Slack file."""
    import boto3

    from moto_s3 import moto_s3

    slack = tmp_path / "slack.jsonl"
    result = runner.invoke(app, ["findings", "export", "--store", str(store), "-o", f"file:{slack}?format=slack"])
    assert result.exit_code == 0, result.output
    assert all("blocks" in json.loads(line) for line in slack.read_text().splitlines())
    with moto_s3(monkeypatch) as url:
        hub = boto3.client("securityhub", endpoint_url=url)
        hub.enable_security_hub()
        result = runner.invoke(app, ["findings", "export", "--store", str(store), "-o", f"securityhub?endpoint={url}"])
        assert result.exit_code == 0, result.output
        assert "sent 2 of 2 findings to securityhub" in result.output
        assert len(hub.get_findings()["Findings"]) == 2
        topic = "arn:aws:sns:us-east-1:123456789012:none"  # no such topic: refused, not retried
        result = runner.invoke(
            app, ["findings", "export", "--store", str(store), "-o", f"sns:{topic}?endpoint={url}&retries=0"]
        )
        assert result.exit_code == 1
        assert "2 findings not delivered" in str(result.exception)
        assert "NotFound" in str(result.exception)
    result = runner.invoke(app, ["findings", "export", "--store", str(store), "-f", "xml"])
    assert result.exit_code == 1
    assert "unknown format 'xml'" in str(result.exception)
