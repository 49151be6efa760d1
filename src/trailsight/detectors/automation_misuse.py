"""``automation_misuse`` — a machine identity used the way a person or an outsider would use it.

Source: Sophos scores automation roles differently from people: off-hours means nothing for a
pipeline, but a new network or an interactive tool means a lot — stolen instance or CI
credentials used from somewhere else.

Algorithm, in plain words: only principals whose *automation likelihood*
(:mod:`trailsight.features.behaviour`, learned from behaviour: calls neither made as a person
nor from the console) reaches ``min_automation`` (0.6) are scored. For them:

* a call from the console, or from the CLI when the principal (almost) never uses it, scores
  0.9 — a person at the keyboard with a machine's credentials;
* a call from a public network outside AWS when (nearly) all of its earlier calls came from AWS
  networks (``aws_share`` 0.9) scores 0.95 — credentials taken off an instance or a function;
* a call from a network (ASN) the principal never used, any kind, scores 0.7.

The score is scaled by the automation likelihood, and the highest of the three counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, recently_new
from trailsight.features.behaviour import AUTOMATION_AT
from trailsight.finding import Reason


class AutomationMisuseDetector(Detector):
    """A machine identity used interactively or from outside its usual networks (Sophos)."""

    name: ClassVar[str] = "automation_misuse"
    source: ClassVar[str] = "Sophos automation-role scoring"
    requires: ClassVar[tuple[str, ...]] = (
        "event_time",
        "ua_family",
        "ip_kind",
        "asn",
        "as_org",
        "p_asn_n",
        "p_asn_first",
        "auto_score",
        "p_interactive_share",
        "p_aws_share",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "min_automation": AUTOMATION_AT,
        "aws_share": 0.9,
        "new_hours": 24,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        auto = cols.num("auto_score")
        machine = auto >= self.p("min_automation")
        inter_share = cols.num("p_interactive_share", fill=1.0)
        console = cols.equals("ua_family", "console")
        cli = cols.equals("ua_family", "cli")
        interactive = console | (cli & (inter_share < 0.05))
        public = cols.equals("ip_kind", "public")
        off_aws = public & (cols.num("p_aws_share") >= self.p("aws_share"))
        new_asn = cols.present("asn") & recently_new(cols, "p_asn_n", "p_asn_first", self.p("new_hours"))
        parts = np.stack([np.where(interactive, 0.9, 0.0), np.where(off_aws, 0.95, 0.0), np.where(new_asn, 0.7, 0.0)])
        score = np.where(machine, parts.max(axis=0) * auto, 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            details: dict[str, Any] = {
                "automation": round(float(auto[i]), 2),
                "ua_family": cols.text("ua_family")[i],
                "ip_kind": cols.text("ip_kind")[i],
                "asn": int(cols.num("asn")[i]) if cols.present("asn")[i] else None,
                "as_org": cols.text("as_org")[i],
                "earlier_share_from_aws": round(float(cols.num("p_aws_share")[i]), 3),
            }
            who = f"an automation identity ({auto[i]:.0%} likely a machine)"
            found: list[tuple[str, str, str]] = []  # (code, who-clause, how it was used)
            if off_aws[i]:
                org = cols.text("as_org")[i] or "a public network"
                clause = f"{who} that calls from AWS networks"
                found.append(("automation_outside_aws", clause, f"from {org} outside AWS"))
            if interactive[i]:
                found.append(("automation_interactive", who, f"from the {cols.text('ua_family')[i]}"))
            if new_asn[i] and not found:
                org = cols.text("as_org")[i] or "unknown"
                found.append(("automation_new_network", who, f"from a network it never used: {org}"))
            # ``how`` lets a finding's explanation say it once, without re-reading the message.
            return [self._reason(code, s, clause, how, details) for code, clause, how in found]

        return score, explain

    def _reason(self, code: str, score: float, clause: str, how: str, details: dict[str, Any]) -> Reason:
        return Reason(
            detector=self.name,
            code=code,
            score=score,
            message=f"{clause} was used {how}",
            details={**details, "how": how},
        )
