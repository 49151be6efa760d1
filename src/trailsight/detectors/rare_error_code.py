"""``rare_error_code`` — an error code the account rarely or never gets.

Source: Elastic's ``rare_error_code`` ML job (``rare`` by ``aws.cloudtrail.error_code``, the rule
alerts at anomaly score 50).

Algorithm, in plain words: for an event that failed, count the clock hours in which the account
saw this error code before, against all hours the account was active. The account needs
``min_hours`` (20) hours of history. A code never seen scores 1; otherwise its share of the
hours is graded like Elastic's ``rare`` (0.75 at ``rare_share``, 1 %). Successful events score 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, rarity_score
from trailsight.finding import Reason


class RareErrorCodeDetector(Detector):
    """Error code rare for the account (Elastic rare_error_code)."""

    kind: ClassVar[str] = "what"
    name: ClassVar[str] = "rare_error_code"
    source: ClassVar[str] = "Elastic rare_error_code"
    requires: ClassVar[tuple[str, ...]] = ("error_code", "a_err_n", "a_err_hours", "a_hours", "a_err_freq")
    defaults: ClassVar[dict[str, float | int | bool]] = {"threshold": 50, "min_hours": 20, "rare_share": 0.01}

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        failed = cols.present("error_code")
        hours = cols.num("a_hours")
        n = cols.num("a_err_n")
        share = cols.num("a_err_hours") / np.maximum(hours, 1.0)
        graded = np.where(n == 0, 1.0, rarity_score(share, self.p("rare_share")))
        score = np.where(failed & (hours >= self.p("min_hours")), graded, 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            code = cols.text("error_code")[i]
            details = {"error_code": code, "account_count_before": int(n[i]), "frequency": cols.text("a_err_freq")[i]}
            if n[i] == 0:
                msg = f"error {code} was never seen in this account before"
                rc = "new_error_code_for_account"
            else:
                msg = f"error {code} is rare in this account ({share[i]:.1%} of its hours)"
                rc = "rare_error_code_for_account"
            return [Reason(detector=self.name, code=rc, score=s, message=msg, details=details)]

        return score, explain
