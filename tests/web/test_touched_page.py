"""The finding page shows what the calls did, the resources they touched, the counterparties and next steps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from conftest import make_client
from webseed import password_finding

from trailsight.finding import Counterparty, EffectEntry, ResourceEntry
from trailsight.findings.next_steps import next_steps
from trailsight.store.findings import save_findings

EVIL = "<script>alert(1)</script>"


def test_finding_page_shows_what_was_done_and_escapes_it(store: Path, events: list[dict[str, Any]]) -> None:
    base = password_finding(events, fid="touched00000001")
    finding = replace(
        base,
        effects=[
            EffectEntry(
                kind="external_share",
                tactic="Exfiltration",
                technique="T1537",
                description=f"shared snapshot snap-0d4e{EVIL} with account 193672423079",
                succeeded=True,
                event_id=base.event_ids[0],
                event_time=base.first_seen,
            )
        ],
        resources=[ResourceEntry(type="EBS snapshot", id=f"snap-0d4e{EVIL}", events=2)],
        counterparties=[
            Counterparty(kind="account", id="193672423079", via="external_share"),
            Counterparty(kind="access key", id="AKIAEXAMPLE", via="CreateAccessKey"),
        ],
        next_steps=next_steps(["external_share"], "Exfiltration"),
    )
    save_findings(store, [finding])
    html = make_client(store).get(f"/findings/{finding.id}").text
    assert "What the calls did and touched" in html
    assert "with account 193672423079" in html
    assert 'href="/key/AKIAEXAMPLE"' in html
    assert "Revert the share" in html
    assert EVIL not in html
    assert "&lt;script&gt;" in html
    # The section comes right after the explanation.
    assert html.index("What happened") < html.index("What the calls did and touched") < html.index("Anomalous APIs")


def test_finding_page_without_effects_has_no_section(store: Path, events: list[dict[str, Any]]) -> None:
    finding = password_finding(events, fid="touched00000002")
    save_findings(store, [finding])
    assert "What the calls did and touched" not in make_client(store).get(f"/findings/{finding.id}").text
