"""``volume_spike`` — far more calls in an hour than the principal usually makes then.

Source: Splunk's "abnormally high number of cloud API calls" searches (``fit DensityFunction``
on hourly call counts per user, ``threshold=0.005``).

Algorithm, in plain words: count the principal's calls so far in the event's clock hour
(including this one). Its usual volume for that hour of the week is the mean and variance of
the hourly counts at the same hour-of-week slot over the weeks of its history (forget window;
hours without calls count as zero). A normal density (variance at least the mean and 1, as for
counts) gives the upper-tail probability p of the current count; p at ``density_threshold``
(0.005) scores 0.5, and the score reaches 1 at p² — i.e. ``log(p) / (2·log(threshold))``.
Needs ``min_days`` (7) active days and at least ``min_count`` (20) calls in the hour.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, upper_tail_p
from trailsight.finding import Reason


class VolumeSpikeDetector(Detector):
    """Hourly volume far above the principal's usual rate (Splunk DensityFunction)."""

    name: ClassVar[str] = "volume_spike"
    source: ClassVar[str] = "Splunk DensityFunction on hourly API calls per user"
    requires: ClassVar[tuple[str, ...]] = ("p_hour_count", "p_how_mean", "p_how_var", "p_days", "how")
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "density_threshold": 0.005,
        "min_days": 7,
        "min_count": 20,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        cur = cols.num("p_hour_count") + 1.0
        mean = cols.num("p_how_mean")
        var = np.maximum(np.maximum(cols.num("p_how_var"), mean), 1.0)
        active = (cols.num("p_days") >= self.p("min_days")) & (cur >= self.p("min_count"))
        z = np.where(active, (cur - mean) / np.sqrt(var), 0.0)
        p = np.where(active, upper_tail_p(z), 1.0)
        denom = 2.0 * -math.log(self.p("density_threshold"))
        score = np.where(active, np.clip(-np.log(np.maximum(p, 1e-300)) / denom, 0.0, 1.0), 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            details = {
                "calls_this_hour": int(cur[i]),
                "usual_for_hour_of_week": round(float(mean[i]), 2),
                "p": float(p[i]),
            }
            msg = f"{int(cur[i])} calls this hour, usually {mean[i]:.1f} at this hour of the week"
            return [Reason(detector=self.name, code="volume_spike", score=s, message=msg, details=details)]

        return score, explain
