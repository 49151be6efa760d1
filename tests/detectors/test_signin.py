"""Sign-ins against the person's habit, root use and long-term keys from a new network, end to end.

Hand-made CloudTrail for three weeks of a small account goes through the real ingest into a
DuckDB/Parquet store: maria always signs in with MFA, li (a legacy user) never does, omar signs in
with MFA, the root user is never used and a backup user's long-term key calls S3 from one network.
On the test day maria and li sign in without MFA, omar signs in after four failed passwords and a
wrong MFA code, the
root user signs in and the backup key calls from a network it never used. Detection runs through
``trailsight.pipeline.detect``; the features are also read directly from the store with the Ibis
expressions (``build_feature_table``) to check the detectors row by row.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from realdata import INVICTUS
from trailsight.detectors.base import Columns
from trailsight.detectors.signin import LongTermKeyNetworkDetector, SigninDetector
from trailsight.features.asof import build_feature_table
from trailsight.features.source import connect, open_events, quiet_ibis
from trailsight.finding import Finding
from trailsight.ingest import ingest
from trailsight.pipeline import detect
from trailsight.store.layout import StoreLayout

ACCOUNT = "301234567890"
START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
DAYS = 21
TEST_DAY = START + timedelta(days=DAYS)
HOME_IP = "84.59.12.34"
OFFICE_IP = "62.214.7.9"
BACKUP_IP = "52.58.10.20"
NEW_IP = "185.220.101.7"
ROOT_IP = "91.198.174.192"
CONSOLE_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
SDK_UA = "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.5 lang/python#3.11.8 Botocore/1.34.0"


class _Records:
    """CloudTrail records of the hand-made account, numbered as they are made."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, when: datetime, who: str, name: str, source: str, **extra: Any) -> None:
        n = len(self.items)
        if who == "root":
            identity: dict[str, Any] = {
                "type": "Root",
                "principalId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:root",
                "accountId": ACCOUNT,
            }
        else:
            identity = {
                "type": "IAMUser",
                "principalId": f"AIDA{who.upper():0<16}",
                "arn": f"arn:aws:iam::{ACCOUNT}:user/{who}",
                "accountId": ACCOUNT,
                "userName": who,
            }
        key = extra.pop("key", None)
        if key:
            identity["accessKeyId"] = key
        rec: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": name,
            "awsRegion": "eu-central-1",
            "sourceIPAddress": extra.pop("ip", HOME_IP),
            "userAgent": extra.pop("ua", CONSOLE_UA),
            "requestParameters": None,
            "responseElements": None,
            "requestID": f"req-{n}",
            "eventID": f"00000000-0000-4000-8000-{n:012d}",
            "readOnly": name.startswith(("Describe", "List", "Get")),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
        }
        rec.update(extra)
        self.items.append(rec)

    def signin(self, when: datetime, who: str, mfa: bool, *, ok: bool = True, ip: str = HOME_IP) -> None:
        extra: dict[str, Any] = {
            "eventType": "AwsConsoleSignIn",
            "responseElements": {"ConsoleLogin": "Success" if ok else "Failure"},
            "additionalEventData": {"MFAUsed": "Yes" if mfa else "No", "MobileVersion": "No"},
        }
        if not ok:
            extra["errorMessage"] = "Failed authentication"
        self.add(when, who, "ConsoleLogin", "signin.amazonaws.com", ip=ip, **extra)

    def work(self, when: datetime, who: str, ip: str = HOME_IP) -> None:
        for i, (name, source) in enumerate(
            [
                ("DescribeInstances", "ec2.amazonaws.com"),
                ("ListBuckets", "s3.amazonaws.com"),
                ("DescribeAlarms", "monitoring.amazonaws.com"),
            ]
        ):
            self.add(when + timedelta(minutes=2 + i), who, name, source, ip=ip)


def _records() -> list[dict[str, Any]]:
    r = _Records()
    for d in range(DAYS + 1):
        day = START + timedelta(days=d)
        test = d == DAYS
        at = day + timedelta(hours=8)
        r.signin(at, "maria", mfa=not test)  # always MFA; not on the test day
        r.work(at, "maria")
        r.signin(at + timedelta(minutes=20), "li", mfa=False)  # never MFA, as a habit
        r.work(at + timedelta(minutes=20), "li", ip=OFFICE_IP)
        omar = at + timedelta(minutes=40)
        if test:
            for k in range(4):
                r.signin(omar + timedelta(seconds=40 * k), "omar", mfa=False, ok=False, ip=OFFICE_IP)
            r.add(  # a wrong MFA code counts as a failure too
                omar + timedelta(seconds=170),
                "omar",
                "CheckMfa",
                "signin.amazonaws.com",
                ip=OFFICE_IP,
                eventType="AwsConsoleSignIn",
                responseElements={"CheckMfa": "Failure"},
                errorMessage="Failed authentication",
            )
            omar += timedelta(minutes=3)
        r.signin(omar, "omar", mfa=True, ip=OFFICE_IP)
        r.work(omar, "omar", ip=OFFICE_IP)
        for h in range(4):  # the backup user's long-term key, from its one network
            r.add(
                day + timedelta(hours=2 + h),
                "backup",
                "PutObject" if h else "ListBuckets",
                "s3.amazonaws.com",
                ip=NEW_IP if test and h == 3 else BACKUP_IP,
                ua=SDK_UA,
                key="AKIAEXAMPLEBACKUP001",
            )
    r.signin(TEST_DAY + timedelta(hours=11), "root", mfa=True, ip=ROOT_IP)
    r.add(TEST_DAY + timedelta(hours=11, minutes=2), "root", "ListUsers", "iam.amazonaws.com", ip=ROOT_IP)
    return r.items


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signin")
    logs = root / "logs"
    logs.mkdir()
    (logs / f"{ACCOUNT}_CloudTrail_eu-central-1_20250324T0000Z_test.json").write_text(
        json.dumps({"Records": _records()}), encoding="utf-8"
    )
    ingest([logs], root / "store", workers=0)
    return root / "store"


@pytest.fixture(scope="module")
def findings(store: Path) -> list[Finding]:
    return detect(store, TEST_DAY, TEST_DAY + timedelta(days=1), save=False)


@pytest.fixture(scope="module")
def features(store: Path) -> pa.Table:
    return _features(store, TEST_DAY)


def _features(store: Path, day: datetime) -> pa.Table:
    """The as-of features of ``day``, as the Ibis expressions compute them from the store."""
    with quiet_ibis():
        con = connect()
        events = open_events(con, StoreLayout(store), day, day + timedelta(days=1), 90)
        table: pa.Table = con.to_pyarrow(build_feature_table(events, day, day + timedelta(days=1)))
    return table


def _codes(findings: list[Finding], who: str) -> set[str]:
    return {r.code for f in findings if f.principal.endswith(who) for r in f.reasons if r.detector == "signin"}


def _lines(findings: list[Finding], who: str) -> list[str]:
    return [line for f in findings if f.principal.endswith(who) for line in f.explanation]


def test_no_mfa_is_raised_for_the_person_who_always_uses_it(findings: list[Finding]) -> None:
    assert "signin_without_mfa" in _codes(findings, "user/maria")
    assert "signed in without MFA — maria always uses it (21 of 21 earlier sign-ins)" in _lines(findings, "user/maria")


def test_no_mfa_is_usual_for_the_person_who_never_uses_it(findings: list[Finding]) -> None:
    assert not _codes(findings, "user/li")
    assert not [f for f in findings if f.principal.endswith("user/li")]


def test_failures_then_success_is_raised(findings: list[Finding]) -> None:
    assert "signin_after_failures" in _codes(findings, "user/omar")
    assert "signed in after 5 failed sign-ins in 3 min" in _lines(findings, "user/omar")


def test_root_signin_is_raised_against_the_account_history(findings: list[Finding]) -> None:
    assert {"root_signin", "root_use"} <= _codes(findings, ":root")
    assert (
        "signed in to the console as the root user — this account used root never on an earlier day of its history"
        in _lines(findings, ":root")
    )
    # Root is judged against the account's three weeks: its first use in them is not "Low, no history".
    assert {f.confidence for f in findings if f.principal.endswith(":root")} <= {"Medium", "High"}


def test_features_count_sign_ins_and_failures(features: pa.Table) -> None:
    rows = features.filter(pc.equal(features["event_name"], "ConsoleLogin")).to_pylist()
    maria = [r for r in rows if r["principal_name"] == "maria"]
    assert [(r["p_signin_n"], r["p_signin_mfa_n"]) for r in maria] == [(21, 0)]
    omar = [r for r in rows if r["principal_name"] == "omar"]
    assert [r["signin_fails"] for r in omar] == [0, 0, 0, 0, 5]  # four failed passwords, one failed MFA code
    assert omar[-1]["signin_fails_first"] == omar[0]["event_time"]


def test_long_term_key_from_a_new_network(features: pa.Table) -> None:
    scores = LongTermKeyNetworkDetector().score(features)
    fired = [i for i in range(len(scores)) if scores.fired[i]]
    rows = [features.slice(i, 1).to_pylist()[0] for i in fired]
    assert [r["source_ip"] for r in rows] == [NEW_IP]
    (reason,) = scores.reasons[fired[0]]
    assert reason.code == "long_term_key_new_network"
    assert reason.message.startswith("long-term access key AKIA…P001 used from AS")
    assert reason.message.endswith("for the first time (the key was active on 21 earlier days)")


def test_signin_detector_reads_a_network_class_when_present(features: pa.Table) -> None:
    rows = pc.and_(pc.equal(features["event_name"], "ConsoleLogin"), pc.equal(features["principal_name"], "maria"))
    one = features.filter(rows)
    one = one.append_column("network_class", pa.array(["hosting"], pa.string()))
    det = SigninDetector()
    scores = det.score(one, Columns(one))
    assert scores.fired[0]
    assert [r.code for r in scores.reasons[0]] == ["signin_without_mfa"]


@pytest.mark.skipif(not INVICTUS.is_dir(), reason="the invictus-ir capture is not in ../shared")
def test_real_capture_signins_without_history_raise_nothing_about_mfa(tmp_path: Path) -> None:
    """bert-jan signs in with MFA and a Stratus user without it, with no history: no habit to break."""
    store = tmp_path / "store"
    ingest([INVICTUS], store, workers=0)
    table = _features(store, datetime(2023, 7, 10, tzinfo=UTC))
    logins = table.filter(pc.equal(table["event_name"], "ConsoleLogin"))
    assert logins.num_rows >= 2
    assert set(logins["mfa"].to_pylist()) == {True, False}
    scores = SigninDetector().score(logins)
    assert not any(code == "signin_without_mfa" for rs in scores.reasons for r in rs for code in [r.code])
    assert [r.get("signin_fails") for r in logins.to_pylist()] == [0] * logins.num_rows


def test_sign_in_reasons_reach_the_cli_the_web_page_and_the_exports(store: Path, findings: list[Finding]) -> None:
    """``findings show``, the web finding page, OCSF (pydantic-ocsf) and ASFF (botocore) carry the line."""
    from botocore.session import get_session
    from botocore.validate import ParamValidator
    from ocsf.v1_7_0.events import DetectionFinding
    from typer.testing import CliRunner

    from trailsight.cli.main import app
    from trailsight.findings.export_asff import to_asff
    from trailsight.findings.export_ocsf import to_ocsf
    from trailsight.store.findings import save_findings
    from trailsight.web.app import create_app

    with warnings.catch_warnings():
        # starlette's TestClient warns at import that it prefers the httpx2 package; not ours to fix.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    line = "signed in without MFA — maria always uses it (21 of 21 earlier sign-ins)"
    maria = next(f for f in findings if f.principal.endswith("user/maria") and not f.members)
    save_findings(store, [maria])
    shown = CliRunner().invoke(app, ["findings", "show", maria.id, "--store", str(store)], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert line in shown.output
    html = TestClient(create_app(store), base_url="http://127.0.0.1").get(f"/findings/{maria.id}").text
    assert line in html
    doc = to_ocsf(maria)
    DetectionFinding.model_validate(doc)
    assert line in doc["finding_info"]["desc"]
    assert any(a["anomalies"][0]["observation_parameter"] == "signin_without_mfa" for a in doc["anomaly_analyses"])
    item = to_asff(maria)
    shape = get_session().get_service_model("securityhub").operation_model("BatchImportFindings").input_shape
    assert not ParamValidator().validate({"Findings": [item]}, shape).has_errors()
    assert line in item["Description"]


def test_the_local_engine_gives_the_expression_s_sign_in_columns(store: Path, features: pa.Table) -> None:
    """The numpy chunk path (sparse pairs, failure runs) equals the Ibis expression on this store."""
    from trailsight.engines.local import materialise_profiles
    from trailsight.features.chunk import ChunkFeatures
    from trailsight.features.options import FeatureOptions
    from trailsight.features.source import all_lake_files

    layout = StoreLayout(store)
    since, until = TEST_DAY + timedelta(hours=6), TEST_DAY + timedelta(days=1)  # same-day history counts
    with quiet_ibis():
        con = connect()
        profiles, _ = materialise_profiles(con, layout, all_lake_files(layout), since, until, FeatureOptions())
        events = open_events(con, layout, since, until, 0, table_name="chunk_events")
        got = ChunkFeatures(con, profiles, FeatureOptions())(events, "chunk_events", since, until)
    by_time = [("event_time", "ascending"), ("event_id", "ascending")]  # the engine keeps the rows as read
    got = got.sort_by(by_time)
    want = features.filter(pc.greater_equal(features["event_time"], pa.scalar(since))).sort_by(by_time)
    columns = [c for c in got.column_names if c.startswith(("p_signin", "k_", "signin_")) or c.split("_")[0] == "k"]
    assert {"p_signin_n", "p_signin_mfa_n", "k_n", "k_asn_n", "signin_fails", "signin_fails_first"} <= set(columns)
    assert got.num_rows == want.num_rows > 0
    for name in columns:
        expected = want.column(name)
        if expected.type != got.schema.field(name).type:  # DuckDB sums integers as HUGEINT
            expected = expected.cast(got.schema.field(name).type)
        assert got.column(name).equals(expected), name
    assert max(got.column("signin_fails").to_pylist()) == 5
