"""``rare_api_for_principal`` — an API this principal (or the person behind it) does not use.

Sources: Elastic's ``rare_method_for_a_username`` ML job (``rare`` by ``event.action`` over
``user.name``, alert threshold 75) and Splunk ESCU's "previously unseen API call per user role"
(first seen within the last 24 h, 7-day enough-data gate, 90-day forget window).

Algorithm, in plain words: take how often the principal called this API before the event, from
the as-of features. If never (in the forget window), the API is *new* for the principal: score 1.
If its first call came less than ``new_hours`` (24) hours ago, it is still new, as Splunk's daily
search would say: score 0.85. Otherwise compare the clock hours in which the principal used
this API with all the hours it was active (Elastic's buckets): with at least ``min_hours`` (20)
hours of history, a share at or under ``rare_share`` (1 %) scores 0.75 (Elastic's threshold) and
rarer scores higher. For shared roles (SSO permission sets) the same is done for the *actor* —
the person behind the role — and the higher of the two counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, rarity_score
from trailsight.finding import Reason


class RareApiForPrincipalDetector(Detector):
    """New or rare API for the principal / actor (Elastic rare_method_for_a_username, Splunk first seen)."""

    kind: ClassVar[str] = "what"
    default_enabled: ClassVar[bool] = False
    name: ClassVar[str] = "rare_api_for_principal"
    version: ClassVar[str] = "1"
    source: ClassVar[str] = "Elastic rare_method_for_a_username; Splunk previously unseen API call per user role"
    requires: ClassVar[tuple[str, ...]] = (
        "api",
        "event_time",
        "principal",
        "actor",
        "p_api_n",
        "p_api_days",
        "p_api_hours",
        "p_api_first",
        "p_api_freq",
        "p_hours",
        "x_api_n",
        "x_api_first",
        "a_api_n",
        "a_api_principals",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 75,
        "new_hours": 24,
        "min_hours": 20,
        "rare_share": 0.01,
        "still_new_score": 0.85,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        now = cols.epoch("event_time")
        p_n = cols.num("p_api_n")
        p_first = cols.epoch("p_api_first")
        new_secs = self.p("new_hours") * 3600.0
        still_new = self.p("still_new_score")
        unseen = p_n == 0
        recent = ~unseen & (now - np.nan_to_num(p_first, nan=-np.inf) < new_secs)
        hours = cols.num("p_hours")
        share = cols.num("p_api_hours") / np.maximum(hours, 1.0)
        rare = np.where(hours >= self.p("min_hours"), rarity_score(share, self.p("rare_share")), 0.0)
        score = np.where(unseen, 1.0, np.where(recent, np.maximum(still_new, rare), rare))
        # The person behind a shared role.
        shared = cols.differ("actor", "principal")
        x_n = cols.num("x_api_n")
        x_first = cols.epoch("x_api_first")
        x_unseen = shared & (x_n == 0)
        x_recent = shared & ~x_unseen & (now - np.nan_to_num(x_first, nan=-np.inf) < new_secs)
        x_score = np.where(x_unseen, 1.0, np.where(x_recent, still_new, 0.0))
        total = np.maximum(score, x_score)

        def explain(i: int, s: float) -> list[Reason]:
            api = cols.text("api")[i]
            details: dict[str, Any] = {
                "api": api,
                "principal_calls_before": int(p_n[i]),
                "principal_days_before": int(cols.num("p_api_days")[i]),
                "frequency": cols.text("p_api_freq")[i],
                "account_calls_before": int(cols.num("a_api_n")[i]),
                "principals_in_account_using": int(cols.num("a_api_principals")[i]),
            }
            if unseen[i]:
                code, msg = "new_api_for_principal", f"{api} was never called by this principal before"
            elif recent[i]:
                code, msg = "new_api_for_principal", f"{api} was first called by this principal less than a day ago"
            elif score[i] >= x_score[i]:
                details["share_of_active_hours"] = round(float(share[i]), 4)
                code, msg = "rare_api_for_principal", f"{api} is rare for this principal ({share[i]:.1%} of its hours)"
            else:
                code, msg = "new_api_for_actor", f"{api} is new for {cols.text('actor')[i]}"
            if x_score[i] > score[i]:
                code, msg = "new_api_for_actor", f"{api} is new for {cols.text('actor')[i]}"
                details["actor_calls_before"] = int(x_n[i])
            return [Reason(detector=self.name, code=code, score=s, message=msg, details=details)]

        return total, explain
