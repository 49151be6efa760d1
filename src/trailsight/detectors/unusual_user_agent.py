"""``unusual_user_agent`` — a user agent new for the principal and for the account.

Source: Amazon GuardDuty's behaviour feature ``unusualUserAgents`` (new for the user, new for
the account).

Algorithm, in plain words: look up whether the principal (and anyone in the account) used this
exact user agent before, and this user-agent *family* (console, CLI, Python SDK, Terraform …).
A new family for the principal is the strong signal — 1.0 when the account never used it
either, 0.8 otherwise; a new exact agent (a version bump, mostly) scores 0.5 when new to the
account too, 0.35 when only the principal is new to it. AWS-internal agents score 0, and young
principals (under ``min_principal_days`` active days) score at most half. As for networks, a
value stays new for ``new_hours`` (24) after its first sighting.

The exact agent is the *client agent* (:func:`trailsight.enrich.useragent.client_agent`): the
agent without the token naming the call that the AWS CLI v2 appends (``command/iam.list-users``).
A person's first ``aws iam list-users`` is a new API — the behaviour model's to judge — not a
new program; the same command from another CLI version, platform or machine is a new agent.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, recently_new
from trailsight.enrich.useragent import client_agent
from trailsight.finding import Reason


class UnusualUserAgentDetector(Detector):
    """New user agent / agent family for the principal and the account (GuardDuty unusualUserAgents)."""

    name: ClassVar[str] = "unusual_user_agent"
    source: ClassVar[str] = "GuardDuty unusualUserAgents"
    requires: ClassVar[tuple[str, ...]] = (
        "user_agent",
        "ua_family",
        "event_time",
        "p_ua_n",
        "p_ua_first",
        "a_ua_n",
        "a_ua_first",
        "p_uaf_n",
        "p_uaf_first",
        "a_uaf_n",
        "a_uaf_first",
        "p_days",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {"threshold": 50, "min_principal_days": 3, "new_hours": 24}

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        has = cols.present("user_agent")
        internal = cols.equals("ua_family", "aws-service")
        hours = self.p("new_hours")
        p_ua = recently_new(cols, "p_ua_n", "p_ua_first", hours)
        a_ua = recently_new(cols, "a_ua_n", "a_ua_first", hours)
        p_f = recently_new(cols, "p_uaf_n", "p_uaf_first", hours)
        a_f = recently_new(cols, "a_uaf_n", "a_uaf_first", hours)
        has_f = cols.present("ua_family")
        fam_score = np.where(has_f & p_f, np.where(a_f, 1.0, 0.8), 0.0)
        ua_score = np.where(p_ua, np.where(a_ua, 0.5, 0.35), 0.0)
        score = np.where(has & ~internal, np.maximum(fam_score, ua_score), 0.0)
        score = np.where(cols.num("p_days") < self.p("min_principal_days"), score * 0.5, score)

        def explain(i: int, s: float) -> list[Reason]:
            ua, family = cols.text("user_agent")[i], cols.text("ua_family")[i]
            details = {
                "user_agent": ua,
                "ua_family": family,
                "new_for_principal": bool(p_ua[i]),
                "new_for_account": bool(a_ua[i]),
                "new_family_for_principal": bool(p_f[i]),
            }
            if fam_score[i] >= ua_score[i]:
                code, msg = "new_user_agent_family", f"first {family} call for this principal"
            else:
                code = "new_user_agent_for_account" if a_ua[i] else "new_user_agent_for_principal"
                msg = f"user agent {client_agent(ua)!s:.80} is new for this principal"
            return [Reason(detector=self.name, code=code, score=s, message=msg, details=details)]

        return score, explain
