"""What a finding's calls did and touched (findings.touched), and the severity policy (scoring.policy).

Runs on the real invictus-ir Stratus Red Team capture (../shared/data/real) ingested into a
real store, read back through the lake view the detection run uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trailsight.findings.touched import MAX_RESOURCES, account_history, load_calls, what_was_done
from trailsight.scoring.policy import EffectSeverity, effect_floor, finding_severity

ACCOUNT = "123837392027"
OUTSIDER = "193672423079"
_DANGEROUS = (
    "ModifyDBSnapshotAttribute",
    "ModifySnapshotAttribute",
    "CreateUser",
    "AttachUserPolicy",
    "CreateAccessKey",
    "PutBucketPolicy",
    "StopLogging",
)
FAR = datetime(2030, 1, 1, tzinfo=UTC)
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def con(invictus_lake: Any) -> Any:
    """The Stratus capture's lake (conftest), as the tests here call it."""
    return invictus_lake


def _ids(con: Any, where: str) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT event_id FROM events WHERE {where} ORDER BY event_time").fetchall()]


def test_account_history_is_as_of(con: Any) -> None:
    everything = account_history(con, "events", FAR)
    assert ACCOUNT in everything
    # The outsider is first named by the detonation's shares, and only from then on.
    assert OUTSIDER in everything
    assert OUTSIDER not in account_history(con, "events", everything[OUTSIDER])
    assert OUTSIDER in account_history(con, "events", everything[OUTSIDER] + timedelta(microseconds=1))


def test_what_the_detonation_did(con: Any) -> None:
    names = "', '".join(_DANGEROUS)
    ids = _ids(con, f"principal LIKE '%user/bert-jan' AND event_name IN ('{names}')")
    calls = load_calls(con, "events", ids, EPOCH, FAR)
    assert len(calls) == len(set(ids))
    done = what_was_done(list(calls.values()), account_history(con, "events", FAR))
    words = [t.effect.description for t in done.effects]
    assert "shared RDS snapshot exfiltration with account 193672423079" in words
    assert any(w.startswith("attached AdministratorAccess to user malicious-iam-user") for w in words)
    assert [t.event_time for t in done.effects] == sorted(t.event_time for t in done.effects)
    assert len(words) == len(set(words))
    parties = {(p.kind, p.id) for p in done.counterparties}
    assert ("account", OUTSIDER) in parties
    assert ("access key", "AKIATFQR7NSC3ZO6PKAZ") in parties
    touched = {r.id for r, _ in done.resources}
    assert len(done.resources) <= MAX_RESOURCES
    assert "snap-083d3b857c13988bc" in touched
    # An S3 bucket named in the request and listed as an ARN in resources is one resource.
    assert not ({"stratus-red-team-bdbp-lhfzvgcamn"} & touched)
    assert "arn:aws:s3:::stratus-red-team-bdbp-lhfzvgcamn" in touched


def test_partner_seen_before_is_no_outsider(con: Any) -> None:
    ids = _ids(con, "event_name = 'ModifyDBSnapshotAttribute'")
    calls = list(load_calls(con, "events", ids, EPOCH, FAR).values())
    history = account_history(con, "events", FAR)
    assert [t.effect.kind for t in what_was_done(calls, history).effects] == ["external_share"]
    # The same share, when the account had been named by an earlier finding's call, is no news.
    earlier = {**history, OUTSIDER: min(c.event_time for c in calls) - timedelta(days=14)}
    assert what_was_done(calls, earlier).effects == []


def test_severity_policy() -> None:
    admin = EffectSeverity(kind="admin_grant", severity="High", succeeded=True)
    logging = EffectSeverity(kind="logging_off", severity="High", succeeded=True)
    web = EffectSeverity(kind="network_open_web", severity="Medium", succeeded=True)
    tried = EffectSeverity(kind="org_leave", severity="High", succeeded=False)
    # An admin grant is High whatever the history; a newcomer doing it is worse, not better.
    assert finding_severity(2.0, [admin], history_days=40, gated=False) == 7.0
    assert finding_severity(2.0, [admin], history_days=0, gated=True) == 7.5
    assert effect_floor([admin, logging], new_principal=False) == 7.5
    # Never lower than the behaviour says; capped at the top of the High band.
    assert finding_severity(8.6, [admin, logging], history_days=0, gated=True) == 8.6
    assert effect_floor([admin, logging, web, tried], new_principal=True) <= 8.9
    # A failed attempt counts a band lower; a web port opened is Medium.
    assert effect_floor([tried], new_principal=False) == 4.0
    assert effect_floor([web], new_principal=False) == 4.0
    # A read has no floor: it keeps its behaviour severity, neither raised nor lowered.
    assert finding_severity(2.5, [], history_days=0, gated=True) == 2.5
    assert finding_severity(4.9, [], history_days=30, gated=False) == 4.9


def test_account_history_reads_versioned_lambda_names() -> None:
    import duckdb
    import pyarrow as pa

    when = datetime(2025, 1, 2, tzinfo=UTC)
    grant = '{"functionName": "f", "principal": "999988887777", "action": "lambda:InvokeFunction"}'
    rows = pa.table(
        {
            "event_time": pa.array([when, when], pa.timestamp("us", tz="UTC")),
            "event_source": ["lambda.amazonaws.com", "lambda.amazonaws.com"],
            "event_name": ["AddPermission20150331v2", "GetFunction20150331v2"],
            "request_parameters": [grant, grant],
            "error_code": pa.array([None, None], pa.string()),
            "account_id": [ACCOUNT, ACCOUNT],
            "principal": [f"arn:aws:iam::{ACCOUNT}:user/dev", f"arn:aws:iam::{ACCOUNT}:user/dev"],
            "identity_type": ["IAMUser", "IAMUser"],
            "session_name": pa.array([None, None], pa.string()),
        }
    )
    con = duckdb.connect()
    con.register("events", rows)
    history = account_history(con, "events", FAR)
    assert history == {ACCOUNT: when, "999988887777": when}
