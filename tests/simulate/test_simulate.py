"""The simulator's output: determinism, labels, record contents, S3 layout, CLI."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import SMALL, all_records, read_records, trail_files
from typer.testing import CliRunner

from trailsight.cli.main import app
from trailsight.errors import ConfigError
from trailsight.simulate import ATTACK_NAMES, BENIGN_NAMES, LABELS_FILE, SimulationResult, parse_attacks, simulate

FILE_RE = re.compile(
    r"AWSLogs/(?P<acct>\d{12})/CloudTrail/(?P<region>[a-z]{2}-[a-z]+-\d)/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/"
    r"(?P=acct)_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$"
)
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
REQUIRED = (
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "readOnly",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "eventCategory",
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _identity_key(ui: dict[str, Any]) -> str:
    kind = ui["type"]
    if kind == "AssumedRole":
        return str(ui["sessionContext"]["sessionIssuer"]["arn"])
    if kind == "AWSService":
        return str(ui["invokedBy"])
    if kind == "WebIdentityUser":
        return str(ui["identityProvider"])
    return str(ui.get("arn", ui.get("accountId")))


def test_same_seed_gives_identical_bytes(small_sim: SimulationResult, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", **SMALL)  # type: ignore[arg-type]
    assert again.events == small_sim.events
    assert _digest(tmp_path / "again") == _digest(small_sim.out)


def test_different_seed_differs(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", days=3, principals=8, seed=1, attacks=[])
    b = simulate(tmp_path / "b", days=3, principals=8, seed=2, attacks=[])
    assert _digest(a.out) != _digest(b.out)
    assert a.accounts != b.accounts


def test_labels_point_at_real_events(small_sim: SimulationResult) -> None:
    labels = json.loads(small_sim.labels_path.read_text())
    by_id = {rec["eventID"]: rec for _, rec in all_records(small_sim.out)}
    assert len(by_id) == small_sim.events == labels["counts"]["events"]  # event ids are unique
    assert [a["name"] for a in labels["attacks"]] == list(ATTACK_NAMES)
    assert {b["name"] for b in labels["benign"]} == set(BENIGN_NAMES)
    for lab in labels["attacks"] + labels["benign"]:
        assert lab["event_ids"], lab["name"]
        assert lab["events"] == len(lab["event_ids"])
        for eid in lab["event_ids"]:
            assert eid in by_id, (lab["name"], eid)
        times = [by_id[e]["eventTime"] for e in lab["event_ids"]]
        assert lab["start"] == min(times)
        assert lab["end"] == max(times)
    for lab in labels["attacks"]:
        assert lab["tactics"]
        assert lab["techniques"]
        assert lab["network"]["ip"]
        # Every attack event is made with the labelled principal's identity, from the labelled address.
        for eid in lab["event_ids"]:
            rec = by_id[eid]
            assert _identity_key(rec["userIdentity"]) == lab["principal"], lab["name"]
            assert rec["sourceIPAddress"] == lab["network"]["ip"]
            assert rec["eventTime"] >= labels["history_end"]


def test_attack_selection_and_benign_switch(tmp_path: Path) -> None:
    res = simulate(tmp_path / "s", days=4, principals=8, seed=5, attacks=["snapshot_exfiltration"], benign=False)
    labels = json.loads(res.labels_path.read_text())
    assert [a["name"] for a in labels["attacks"]] == ["snapshot_exfiltration"]
    assert labels["benign"] == []
    assert parse_attacks("all") == list(ATTACK_NAMES)
    assert parse_attacks("none") == []
    assert parse_attacks("bucket_exfiltration, permission_bruteforce") == [
        "bucket_exfiltration",
        "permission_bruteforce",
    ]
    assert parse_attacks("all,stratus_replay") == [*ATTACK_NAMES, "stratus_replay"]
    with pytest.raises(ConfigError, match="unknown attack 'nope'"):
        parse_attacks("nope")
    with pytest.raises(ConfigError, match="--days"):
        simulate(tmp_path / "x", days=1)


def _check_identity(ui: dict[str, Any]) -> None:
    kind = ui["type"]
    if kind == "IAMUser":
        assert re.fullmatch(r"arn:aws:iam::\d{12}:user/[\w.+=,@-]+", ui["arn"])
        assert ui["principalId"].startswith("AIDA")
        assert ui["userName"] == ui["arn"].rsplit("/", 1)[1]
        if "sessionContext" in ui:  # console session: temporary key
            assert ui["accessKeyId"].startswith("ASIA")
        elif "accessKeyId" in ui:
            assert ui["accessKeyId"].startswith("AKIA")
    elif kind == "AssumedRole":
        issuer = ui["sessionContext"]["sessionIssuer"]
        assert issuer["type"] == "Role"
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", issuer["arn"])
        role = issuer["arn"].rsplit("/", 1)[1]
        assert issuer["userName"] == role
        assert ui["arn"].startswith(f"arn:aws:sts::{ui['accountId']}:assumed-role/{role}/")
        session = ui["arn"].split("/", 2)[2]
        assert ui["principalId"] == f"{issuer['principalId']}:{session}"
        assert ui["accessKeyId"].startswith("ASIA")
        assert TIME_RE.match(ui["sessionContext"]["attributes"]["creationDate"])
        if role.startswith("AWSReservedSSO_"):
            assert "/aws-reserved/sso.amazonaws.com/" in issuer["arn"]
            assert session.endswith("@northwind.io")
    elif kind == "Root":
        assert ui["arn"] == f"arn:aws:iam::{ui['accountId']}:root"
        assert ui["principalId"] == ui["accountId"]
    elif kind == "AWSService":
        assert ui["invokedBy"].endswith(".amazonaws.com")
    elif kind == "WebIdentityUser":
        assert ui["identityProvider"].endswith(":oidc-provider/token.actions.githubusercontent.com")
        assert ui["userName"].startswith("repo:")
    elif kind == "AWSAccount":
        assert re.fullmatch(r"\d{12}", ui["accountId"])
    else:
        raise AssertionError(f"unexpected identity type {kind}")


def test_records_are_valid_cloudtrail(small_sim: SimulationResult) -> None:
    types: Counter[str] = Counter()
    errors = 0
    for _, rec in all_records(small_sim.out):
        for key in REQUIRED:
            assert key in rec, key
        assert rec["eventVersion"] in ("1.09", "1.10")
        assert TIME_RE.match(rec["eventTime"])
        assert uuid.UUID(rec["eventID"]).version == 4
        assert rec["eventSource"].endswith(".amazonaws.com")
        assert isinstance(rec["readOnly"], bool)
        assert rec["managementEvent"] is True
        assert rec["eventType"] in ("AwsApiCall", "AwsConsoleSignIn")
        assert rec["eventCategory"] == "Management"
        assert re.fullmatch(r"\d{12}", rec["recipientAccountId"])
        assert ("errorCode" in rec) == ("errorMessage" in rec)
        if "errorCode" in rec:
            errors += 1
            assert rec["responseElements"] is None
        ui = rec["userIdentity"]
        _check_identity(ui)
        types[ui["type"]] += 1
        by_service = ui["type"] == "AWSService" or "invokedBy" in ui
        if by_service:
            assert rec["sourceIPAddress"].endswith(".amazonaws.com")
            assert "tlsDetails" not in rec
        elif rec["eventType"] == "AwsApiCall":
            assert rec["tlsDetails"]["clientProvidedHostHeader"].endswith(".amazonaws.com")
            assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", rec["sourceIPAddress"])
        if rec["eventType"] == "AwsConsoleSignIn":
            assert rec["eventName"] == "ConsoleLogin"
            assert rec["responseElements"] == {"ConsoleLogin": "Success"}
        if rec["eventSource"] in ("iam.amazonaws.com", "signin.amazonaws.com"):
            assert rec["awsRegion"] == "us-east-1"
    assert set(types) == {"IAMUser", "AssumedRole", "Root", "AWSService", "WebIdentityUser", "AWSAccount"}
    assert errors > 0


def test_s3_layout_and_five_minute_files(small_sim: SimulationResult) -> None:
    files = trail_files(small_sim.out)
    assert len(files) > 100
    for path in files:
        m = FILE_RE.search(path.as_posix())
        assert m, path
        stamp = datetime.strptime(m["stamp"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        assert stamp.strftime("%Y/%m/%d") == f"{m['y']}/{m['m']}/{m['d']}"
        for rec in read_records(path):
            assert rec["recipientAccountId"] == m["acct"]
            assert rec["awsRegion"] == m["region"]
            t = datetime.strptime(rec["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            assert 0 < (stamp - t).total_seconds() <= 300


def test_cli_simulate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--days",
            "3",
            "--principals",
            "8",
            "--attacks",
            "secret_harvesting",
            "--no-benign",
            "--start",
            "2025-06-02",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "labelled: 1 attacks, 0 benign" in result.output
    labels = json.loads((out / LABELS_FILE).read_text())
    assert labels["start"] == "2025-06-02T00:00:00Z"
    again = runner.invoke(app, ["simulate", "--out", str(out)])
    assert again.exit_code != 0
    assert "is not empty" in str(again.exception) or "is not empty" in again.output
    bad = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--start", "June"])
    assert bad.exit_code != 0


def test_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from trailsight.simulate import simulate; "
        "simulate(Path(sys.argv[1]), days=3, principals=6, seed=11, attacks=None)"
    )
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"p{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=300)
        digests.append(_digest(out))
    assert digests[0] == digests[1]
