"""What the calls did and touched, in the exports: OCSF resources / remediation, ASFF Resources / Remediation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ocsf.v1_7_0.events import DetectionFinding
from test_export_formats import HOSTILE, T0, make_finding  # beside this file (pytest's rootdir-relative import)

from trailsight.finding import Counterparty, EffectEntry, Finding, ResourceEntry
from trailsight.findings.export_asff import to_asff, validate_asff
from trailsight.findings.export_ocsf import to_ocsf
from trailsight.findings.next_steps import next_steps
from trailsight.store.findings import finding_from_dict


def _done(**changes: Any) -> Finding:
    done = replace(
        make_finding(),
        effects=[
            EffectEntry(
                kind="external_share",
                tactic="Exfiltration",
                technique="T1537",
                description="shared snapshot snap-0d4e with account 193672423079",
                succeeded=True,
                event_id="e2",
                event_time=T0 + timedelta(minutes=2),
            )
        ],
        resources=[
            ResourceEntry(type="EBS snapshot", id="snap-0d4e", events=2),
            ResourceEntry(type="S3 bucket", id="arn:aws:s3:::exports", events=1),
        ],
        counterparties=[Counterparty(kind="account", id="193672423079", via="external_share")],
        next_steps=next_steps(["external_share"], "Exfiltration"),
    )
    return replace(done, **changes)


def test_ocsf_lists_touched_resources_and_next_steps() -> None:
    out = to_ocsf(_done())
    DetectionFinding.model_validate(out)
    uids = [r["uid"] for r in out["resources"]]
    assert uids[0] == "arn:aws:iam::768255226778:user/alice"
    assert uids[1:] == ["snap-0d4e", "arn:aws:s3:::exports"]
    assert out["resources"][2]["name"] == "exports"
    assert out["remediation"]["desc"].startswith("Revert the share")
    attacks = [(a["tactic"]["uid"], a["technique"]["uid"]) for a in out["finding_info"]["attacks"]]
    assert attacks == [("TA0004", "T1098"), ("TA0010", "T1537")]  # the finding's, then the effect's
    unmapped = out["unmapped"]["trailsight"]
    assert unmapped["counterparties"] == [{"kind": "account", "id": "193672423079", "via": "external_share"}]
    assert unmapped["effects"][0]["description"] == "shared snapshot snap-0d4e with account 193672423079"


def test_asff_resources_fit_batch_import_whatever_their_number() -> None:
    many = [ResourceEntry(type="AWS::S3::Bucket", id=f"arn:aws:s3:::b{v}"[:600], events=1) for v in HOSTILE * 5]
    finding = to_asff(_done())
    crowded = to_asff(_done(resources=many))
    validate_asff([finding, crowded])
    types = [r["Type"] for r in finding["Resources"]]
    assert types == ["AwsIamUser", "AwsIamAccessKey", "Other", "AwsS3Bucket"]
    assert len(crowded["Resources"]) == 32
    assert crowded["Resources"][2]["Type"] == "AwsS3Bucket"
    assert finding["Remediation"]["Recommendation"]["Text"].startswith("Revert the share")
    assert "account 193672423079" in finding["ProductFields"]["trailsight/Counterparties"]


def test_new_fields_round_trip_through_json() -> None:
    f = _done()
    body = json.loads(json.dumps(f.to_dict()))
    assert finding_from_dict(body) == f
    # Findings stored before these fields existed still load.
    for key in ("effects", "resources", "counterparties", "next_steps"):
        body.pop(key)
    assert finding_from_dict(body).effects == []
