"""``error_message_spike`` — many distinct error messages in a short time.

Source: Elastic's ``high_distinct_count_error_message`` ML job ("Spike in AWS Error Messages":
``high_distinct_count`` of ``aws.cloudtrail.error_message`` per 15-minute bucket, alert at 50).

Algorithm, in plain words: for each failed event, count the distinct error messages the account
got so far in the event's 15-minute bucket (up to and including this event). Compare with the
account's usual number per bucket over the forget window (mean and variance, zero-buckets
included). With at least ``min_distinct`` (3) messages, the upper-tail probability of the count
under a normal model (variance at least the mean, as for counts) becomes the score:
``-log10(p) / 6`` — so p = 0.001 scores 0.5 and p ≤ 1e-6 scores 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, upper_tail_p
from trailsight.finding import Reason


class ErrorMessageSpikeDetector(Detector):
    """Distinct error messages per 15 minutes far above usual (Elastic)."""

    kind: ClassVar[str] = "what"
    name: ClassVar[str] = "error_message_spike"
    source: ClassVar[str] = "Elastic high_distinct_count_error_message"
    requires: ClassVar[tuple[str, ...]] = ("error_code", "err_distinct_15m", "err_bucket_mean", "err_bucket_var")
    defaults: ClassVar[dict[str, float | int | bool]] = {"threshold": 50, "min_distinct": 3}

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        failed = cols.present("error_code")
        cur = cols.num("err_distinct_15m")
        mean = cols.num("err_bucket_mean")
        var = np.maximum(np.maximum(cols.num("err_bucket_var"), mean), 0.25)
        z = (cur - 0.5 - mean) / np.sqrt(var)
        active = failed & (cur >= self.p("min_distinct"))
        p = np.where(active, upper_tail_p(np.where(active, z, 0.0)), 1.0)
        score = np.where(active, np.clip(-np.log10(np.maximum(p, 1e-300)) / 6.0, 0.0, 1.0), 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            details = {"distinct_messages_15m": int(cur[i]), "usual_per_15m": round(float(mean[i]), 3)}
            msg = f"{int(cur[i])} distinct error messages within 15 minutes (usually {mean[i]:.2f})"
            return [Reason(detector=self.name, code="error_message_spike", score=s, message=msg, details=details)]

        return score, explain
