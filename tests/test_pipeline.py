"""pipeline.detect and `trailsight detect` on a real store: findings, gating, chunks, CLI, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from sample_events import ALICE, NEWBIE, scenario_events, write_lake
from trailsight.cli.main import main
from trailsight.config import Settings
from trailsight.errors import ConfigError, DetectorError, StoreError
from trailsight.finding import Finding
from trailsight.pipeline import default_range, detect
from trailsight.store.layout import StoreLayout

START = datetime(2025, 1, 6, tzinfo=UTC)
TEST_DAY = START + timedelta(days=21)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    write_lake(StoreLayout(root), scenario_events())
    return root


@pytest.fixture(scope="module")
def cli_findings(store: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    out = tmp_path_factory.mktemp("out") / "findings.jsonl"
    main(["detect", "--store", str(store), "--since", "2025-01-27", "--until", "2025-01-28", "-o", str(out)])
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_attack_is_the_top_finding(cli_findings: list[dict[str, object]]) -> None:
    top = cli_findings[0]
    assert top["principal"] == ALICE
    assert top["tactic"] == "DefenseEvasion"  # StopLogging is the highest-risk API
    assert top["severity_label"] == "High"
    assert top["finding_type"] == "DefenseEvasion:IAMUser/AnomalousBehavior"
    # CreateUser, AttachUserPolicy, StopLogging — and the usual ListBuckets before them, which
    # comes from a new network at an hour alice never works (corroborated context).
    assert len(top["event_ids"]) == 4  # type: ignore[arg-type]
    detectors = top["detectors"]
    assert isinstance(detectors, dict)
    assert {"behaviour_model", "unusual_network", "unusual_user_agent", "off_hours"} <= set(detectors)
    apis = {(a["service"], a["event_name"]) for a in top["anomalous_apis"]}  # type: ignore[union-attr]
    assert ("cloudtrail", "StopLogging") in apis
    for key in ("first_seen", "last_seen", "score", "reasons", "explanation", "timeline"):
        assert top[key]
    assert str(top["first_seen"]).endswith("Z")


def test_a_new_principal_calling_dangerous_apis_is_raised_gated(cli_findings: list[dict[str, object]]) -> None:
    gated = [f for f in cli_findings if f["principal"] == NEWBIE]
    assert len(gated) == 1
    assert gated[0]["gated"] is True
    assert gated[0]["confidence"] == "Low"
    assert any("enough-data gate" in line for line in gated[0]["explanation"])  # type: ignore[union-attr]


def test_findings_and_the_run_are_saved(store: Path, cli_findings: list[dict[str, object]]) -> None:
    con = duckdb.connect(str(StoreLayout(store).state), read_only=True)
    try:
        ids = {r[0] for r in con.execute("SELECT id FROM findings").fetchall()}
        runs = con.execute("SELECT events, findings FROM runs").fetchall()
    finally:
        con.close()
    assert {str(f["id"]) for f in cli_findings} <= ids
    assert runs[-1][0] > 0
    assert runs[-1][1] == len(cli_findings)


@pytest.mark.slow
def test_chunks_and_reruns_give_the_same_findings(store: Path) -> None:
    since, until = TEST_DAY - timedelta(days=1), TEST_DAY + timedelta(days=1)
    daily = detect(store, since, until, Settings(data={"detect": {"chunk_days": 1}}), save=False, describe=False)
    at_once = detect(store, since, until, Settings(data={"detect": {"chunk_days": 2}}), save=False, describe=False)
    assert [(f.id, f.score, f.event_ids) for f in daily] == [(f.id, f.score, f.event_ids) for f in at_once]
    assert daily[0].principal == ALICE


def test_default_range_is_the_last_day_with_data(store: Path) -> None:
    assert default_range(store) == (TEST_DAY, TEST_DAY + timedelta(days=1))


def test_user_errors_are_one_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        detect(store, TEST_DAY, TEST_DAY + timedelta(days=1), None, ["nope"])
    with pytest.raises(ConfigError, match="not before"):
        detect(store, TEST_DAY, TEST_DAY, None)
    with pytest.raises(StoreError, match="not a trailsight store"):
        detect(tmp_path, TEST_DAY, TEST_DAY + timedelta(days=1), None)
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--store", str(store), "--detectors", "nope"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown detector 'nope'" in err


def test_bad_usage_exits_2_with_clicks_message(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, said in (
        (["--format", "bogus"], "Invalid value for '--format'"),
        (["--max-findings", "-3"], "Invalid value for '--max-findings'"),
        (["--bogus"], "No such option: --bogus"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["detect", "--store", str(store), *args])
        assert exit_info.value.code == 2, args
        err = capsys.readouterr().err
        assert f"Error: {said}" in err
        assert "unexpected error" not in err


def _comparable(findings: list[Finding]) -> list[dict[str, object]]:
    return [{k: v for k, v in vars(f).items() if k != "detected_at"} for f in findings]


def test_threads_and_worker_processes_give_the_same_findings(store: Path) -> None:
    since, until = TEST_DAY - timedelta(days=3), TEST_DAY + timedelta(days=1)

    def run(**detect_settings: int) -> list[Finding]:
        return detect(store, since, until, Settings(data={"detect": detect_settings}), save=False)

    alone = run(threads=1, workers=0)
    assert alone
    assert alone[0].principal == ALICE
    assert _comparable(run(threads=2, workers=0)) == _comparable(alone)
    # Two worker processes, each scoring its own days from a read-only copy of the profiles.
    assert _comparable(run(threads=1, workers=2)) == _comparable(alone)


@pytest.mark.parametrize("setting", [{"threads": 0}, {"threads": "2"}, {"workers": -1}, {"workers": True}])
def test_bad_parallel_settings_are_config_errors(store: Path, setting: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\[detect\] (threads|workers)"):
        detect(store, TEST_DAY, TEST_DAY + timedelta(days=1), Settings(data={"detect": setting}), save=False)
