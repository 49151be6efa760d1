"""``off_hours`` — activity at an hour the principal does not usually work.

Source: Sophos' behavioural anomaly detection for cloud identities (activity outside the
principal's learned working hours).

Algorithm, in plain words: the principal's working hours are learned from the as-of features —
on how many of its active days (forget window) it was active in the event's UTC clock hour.
With at least ``min_days`` (7) active days of history, an hour it was never active in scores
1, and the score falls linearly to 0 at ``usual_share`` (10 %) of its active days. Round-the-
clock automation is active at every hour, so it never fires.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, seen_today
from trailsight.finding import Reason


class OffHoursDetector(Detector):
    """Outside the principal's learned working hours (Sophos)."""

    name: ClassVar[str] = "off_hours"
    people_only: ClassVar[bool] = True
    source: ClassVar[str] = "Sophos learned working hours"
    requires: ClassVar[tuple[str, ...]] = ("event_time", "hour", "p_hour_days", "p_hour_last", "p_days", "p_last")
    defaults: ClassVar[dict[str, float | int | bool]] = {"threshold": 50, "min_days": 7, "usual_share": 0.1}

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        # Earlier days only: the event's own day must not teach the hours it is judged by.
        days = cols.num("p_days") - seen_today(cols, "p_last")
        hour_days = cols.num("p_hour_days") - seen_today(cols, "p_hour_last")
        frac = hour_days / np.maximum(days, 1.0)
        score = np.where(days >= self.p("min_days"), np.clip(1.0 - frac / self.p("usual_share"), 0.0, 1.0), 0.0)
        hours = cols.num("hour")

        def explain(i: int, s: float) -> list[Reason]:
            h = int(hours[i])
            details = {
                "hour_utc": h,
                "active_days_at_hour": int(cols.num("p_hour_days")[i]),
                "active_days": int(days[i]),
            }
            used = int(hour_days[i])
            msg = (
                f"active at {h:02d}:00 UTC, an hour it worked in on {used} of its {int(days[i])} "
                "active days before this day"
            )
            return [Reason(detector=self.name, code="off_hours", score=s, message=msg, details=details)]

        return score, explain
