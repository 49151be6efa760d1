"""What a call touched (trailsight.enrich.touched) and the next steps per kind (trailsight.findings.next_steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trailsight.enrich.effects import call_from, effects_of, load_kinds
from trailsight.enrich.touched import MAX_PER_CALL, Party, Touched, counterparties_of, merge, resources_of
from trailsight.findings.next_steps import MAX_STEPS, load_steps, next_steps


def _stratus(real_data: Path, name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((real_data / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json")):
        records += [r for r in json.loads(path.read_text(encoding="utf-8"))["Records"] if r["eventName"] == name]
    return records


def test_resources_from_request_response_and_resources_array(real_data: Path) -> None:
    policy = _stratus(real_data, "PutBucketPolicy")[0]
    found = resources_of(
        json.dumps(policy["requestParameters"]), policy.get("responseElements"), json.dumps(policy["resources"])
    )
    assert found[0] == Touched(type="AWS::S3::Bucket", id=policy["resources"][0]["ARN"])
    assert Touched(type="S3 bucket", id=policy["requestParameters"]["bucketName"]) in found
    key = _stratus(real_data, "CreateAccessKey")[0]
    found = resources_of(key["requestParameters"], key["responseElements"])
    assert found == [Touched(type="IAM user", id=key["requestParameters"]["userName"])]


def test_counterparties_name_accounts_keys_and_networks(real_data: Path) -> None:
    rds = _stratus(real_data, "ModifyDBSnapshotAttribute")
    shared = next(r for r in rds if "valuesToAdd" in (r.get("requestParameters") or {}))
    call = call_from(
        event_source=shared["eventSource"],
        event_name=shared["eventName"],
        request_parameters=shared["requestParameters"],
        account_id=shared["recipientAccountId"],
    )
    parties = counterparties_of(shared["eventName"], None, effects_of(call))
    assert parties == [Party(kind="account", id="193672423079", via="external_share")]
    key = _stratus(real_data, "CreateAccessKey")[0]
    created = key["responseElements"]["accessKey"]["accessKeyId"]
    assert counterparties_of("CreateAccessKey", key["responseElements"]) == [
        Party(kind="access key", id=created, via="CreateAccessKey")
    ]
    assume = {"credentials": {"accessKeyId": "ASIAEXAMPLE", "sessionToken": "x"}}
    assert counterparties_of("AssumeRole", json.dumps(assume))[0].id == "ASIAEXAMPLE"


def test_many_objects_are_capped_and_merged() -> None:
    request = {"bucketName": "b", "instancesSet": {"items": [{"instanceId": f"i-{i}"} for i in range(100)]}}
    found = resources_of(request)
    assert len(found) == MAX_PER_CALL
    assert found[0] == Touched(type="S3 bucket", id="b")
    merged = merge([found, resources_of({"bucketName": "b"}), resources_of({"bucketName": "c"})], limit=3)
    assert merged[0] == (Touched(type="S3 bucket", id="b"), 2)
    assert len(merged) == 3


@settings(max_examples=200, deadline=None)
@given(
    request=st.recursive(
        st.none() | st.text(max_size=6) | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["bucketName", "key", "x", "items"]), c),
        max_leaves=15,
    ),
    as_text=st.booleans(),
)
def test_any_request_gives_resources_without_raising(request: Any, as_text: bool) -> None:
    found = resources_of(json.dumps(request) if as_text else request, "not json", "{broken")
    assert len(found) <= MAX_PER_CALL
    assert all(isinstance(t.id, str) and t.id for t in found)


def test_next_steps_per_kind_then_tactic_then_any() -> None:
    table = load_steps()
    # Every effect kind has its steps, written once.
    assert set(load_kinds()) <= set(table)
    steps = next_steps(["external_share", "external_share"], "Exfiltration")
    assert steps[: len(table["external_share"])] == list(table["external_share"])
    assert table["tactic:Exfiltration"][0] in steps
    assert len(steps) <= MAX_STEPS
    assert next_steps([], None) == list(table["any"])
