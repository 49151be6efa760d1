"""The record normaliser: identity keys, field rules, and never raising on any JSON object."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from conftest import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkit import CLOUDTRAIL_KEYS
from trailsight.ingest import Rejection, normalise_record
from trailsight.ingest.normalise import MAX_FIELD_CHARS, is_stable_session_name, normalise_row, rows_to_table
from trailsight.schema import EVENT_SCHEMA


def _ok(record: Any) -> dict[str, Any]:
    out = normalise_record(record)
    assert not isinstance(out, Rejection), out
    return out


def _assumed(role_path: str, role: str, session: str, *, issuer: bool = True) -> dict[str, Any]:
    ui: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{session}",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {"attributes": {"creationDate": "2025-03-03T10:00:00Z", "mfaAuthenticated": "false"}},
    }
    if issuer:
        ui["sessionContext"]["sessionIssuer"] = {
            "type": "Role",
            "principalId": "AROAEXAMPLE",
            "arn": f"arn:aws:iam::111122223333:role/{role_path}{role}",
            "accountId": "111122223333",
            "userName": role,
        }
    return event(1, userIdentity=ui)


def test_iam_user() -> None:
    out = _ok(event(1))
    assert out["principal"] == out["actor"] == "arn:aws:iam::111122223333:user/alice"
    assert out["principal_name"] == "alice"
    assert out["identity_type"] == "IAMUser"
    assert out["service"] == "ec2"
    assert out["event_time"] == datetime(2025, 3, 3, 10, 0, 1, tzinfo=UTC)
    assert str(out["event_date"]) == "2025-03-03"
    assert orjson.loads(out["raw"]) == event(1)
    assert orjson.loads(out["request_parameters"]) == {"maxResults": 5}


def test_assumed_role_is_keyed_by_role_arn_with_path_never_the_session() -> None:
    out = _ok(_assumed("service-role/", "deployer", "botocore-session-1741000000"))
    assert out["principal"] == "arn:aws:iam::111122223333:role/service-role/deployer"
    assert out["actor"] == out["principal"]  # generated session name: the role is the actor
    assert out["session_name"] == "botocore-session-1741000000"
    assert out["principal_arn"].startswith("arn:aws:sts::")
    assert out["principal_name"] == "deployer"
    assert out["mfa"] is False


def test_assumed_role_without_session_issuer_derives_role_arn() -> None:
    out = _ok(_assumed("", "deployer", "i-0abc1234def567890", issuer=False))
    assert out["principal"] == "arn:aws:iam::111122223333:role/deployer"
    assert out["actor"] == out["principal"]


def test_assumed_role_arn_without_account_takes_each_records_own_account() -> None:
    # The same session ARN with an empty account field in two accounts: the derived role ARN must
    # name each record's account, whichever record was seen first (a cache once kept the first).
    arn = "arn:aws:sts:::assumed-role/deployer/i-0abc1234def567890"
    for account in ("111122223333", "444455556666", "111122223333"):
        record = {
            "eventTime": "2024-05-01T00:00:00Z",
            "eventName": "ListBuckets",
            "eventID": f"e-{account}",
            "recipientAccountId": account,
            "userIdentity": {"type": "AssumedRole", "arn": arn, "principalId": "AROAX:i-0abc1234def567890"},
        }
        assert _ok(record)["principal"] == f"arn:aws:iam::{account}:role/deployer"


def test_sso_permission_set_actor_is_the_person() -> None:
    role = "AWSReservedSSO_AdministratorAccess_d2c094dae2636937"
    out = _ok(_assumed("aws-reserved/sso.amazonaws.com/", role, "jane.doe@example.com"))
    assert out["principal"] == f"arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/{role}"
    assert out["actor"] == out["principal"] + "/jane.doe@example.com"
    assert out["principal_name"] == "jane.doe@example.com"


@pytest.mark.parametrize(
    ("name", "stable"),
    [
        ("jane.doe@example.com", True),
        ("alice", True),
        ("GitHubActions", True),
        ("terraform-deployer", True),
        ("botocore-session-1741000000", False),
        ("i-0abc1234def567890", False),
        ("3f2b9c1e-8a7d-4e5f-9b0c-1d2e3f4a5b6c", False),
        ("aws-go-sdk-1689000000123", False),
        ("1689000000", False),
        ("session-9f8e7d6c5b4a3210", False),
        ("aB3dE9fGh2kLmN0pQrS", False),
    ],
)
def test_stable_session_names(name: str, stable: bool) -> None:
    assert is_stable_session_name(name) is stable


def test_role_with_user_like_sessions_gets_one_actor_per_person() -> None:
    out = _ok(_assumed("", "analysts", "bob"))
    assert out["actor"] == "arn:aws:iam::111122223333:role/analysts/bob"
    assert out["principal_name"] == "analysts"


def test_root_service_and_missing_identity() -> None:
    root = _ok(
        event(1, userIdentity={"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"})
    )
    assert root["principal"] == "arn:aws:iam::111122223333:root"
    assert root["principal_name"] == "root"
    svc = _ok(event(1, userIdentity={"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}))
    assert svc["principal"] == svc["actor"] == "lambda.amazonaws.com"
    none = _ok({k: v for k, v in event(1).items() if k != "userIdentity"})
    assert none["principal"] == "unknown"
    assert none["identity_type"] is None


def test_field_rules() -> None:
    assert _ok(event(1, eventTime="2025-01-21 17:49:47.000000000"))["event_time"] == datetime(
        2025, 1, 21, 17, 49, 47, tzinfo=UTC
    )
    assert _ok(event(1, eventTime="2025-01-21T19:49:47+02:00"))["event_time"].hour == 17
    assert _ok(event(1, awsRegion=5))["region"] == "5"
    assert _ok(event(1, readOnly="false"))["read_only"] is False
    assert len(_ok(event(1, errorMessage="e" * 50_000))["error_message"]) == MAX_FIELD_CHARS
    no_account = {k: v for k, v in event(1).items() if k != "recipientAccountId"}
    assert _ok(no_account)["account_id"] == "111122223333"  # from userIdentity.accountId
    assert isinstance(normalise_record(event(1, recipientAccountId="../../etc")), Rejection)
    assert normalise_record(event(1, eventTime="1999-12-31T23:59:59Z")) == Rejection(
        "eventTime is not between 2000 and 2100: '1999-12-31T23:59:59Z'"
    )


def test_generated_id_is_deterministic() -> None:
    record = {k: v for k, v in event(1).items() if k != "eventID"}
    one, two = _ok(record), _ok(dict(reversed(list(record.items()))))
    assert one["event_id"] == two["event_id"]
    assert one["event_id"].startswith("ts-")


# -- property: any JSON object normalises or is rejected with a reason, never raises ----------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_times = st.sampled_from(["2025-03-03T10:00:00Z", "2025-03-03 10:00:00", "bad", "", "2025-13-01T00:00:00Z"]) | _json
_identity = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["IAMUser", "AssumedRole", "Root", "AWSService", "Unknown", "SAMLUser"]) | _json,
        "arn": st.sampled_from(["arn:aws:sts::1:assumed-role/r/s", "arn:aws:iam::1:user/u", "x"]) | _json,
        "accountId": _json,
        "sessionContext": _json,
        "invokedBy": _json,
        "principalId": _json,
    },
)
_records = st.dictionaries(st.sampled_from(CLOUDTRAIL_KEYS) | st.text(max_size=8), _json, max_size=10).flatmap(
    lambda base: st.fixed_dictionaries(
        {}, optional={"eventTime": _times, "eventName": _json, "userIdentity": _identity | _json}
    ).map(lambda extra: {**base, **extra})
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records)
def test_any_json_object_normalises_or_is_rejected_with_a_reason(record: dict[str, Any]) -> None:
    out = normalise_row(record, "f", 0, None)
    if isinstance(out, Rejection):
        assert out.reason
        assert "\n" not in out.reason
        return
    table = rows_to_table([out])
    assert table.schema == EVENT_SCHEMA
    row = table.to_pylist()[0]
    assert row["event_id"]
    assert row["principal"]
    assert row["actor"]
    assert row["event_name"]


@settings(max_examples=100, deadline=None)
@given(_json)
def test_any_json_value_never_raises(value: Any) -> None:
    out = normalise_record(value)
    assert isinstance(out, Rejection | dict)
