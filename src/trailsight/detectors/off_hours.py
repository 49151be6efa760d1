"""``off_hours`` — activity at an hour the principal does not usually work, on the caller's clock.

Source: Sophos' behavioural anomaly detection for cloud identities (activity outside the
principal's learned working hours).

Algorithm, in plain words: the principal's working hours are learned from the as-of features —
on how many of its active days (forget window) it was active in the event's clock hour. With at
least ``min_days`` (7) active days of history, an hour it was never active in scores 1, and the
score falls linearly to 0 at ``usual_share`` (10 %) of its active days. Round-the-clock
automation is active at every hour, so it never fires.

Which clock: two sets of hours are learned side by side, one in UTC (``p_hour``) and one in
the local time of wherever each call came from (``p_lhour``, from the source address's time zone,
:mod:`trailsight.enrich.timezone`). An event may be judged on the local clock when it came from a
country the principal is *settled* in — one it called from on at least ``settled_days`` (2)
earlier days and in at least ``settled_hours`` (8, a working day) distinct clock hours of the
forget window, counted as-of like every other feature, and where its previous call came from
too. Its home country and a stay abroad of a few working days qualify; a few calls from afar
over several nights do not, nor do calls from afar between the owner's own calls at home.
A settled event scores the lower of the two clocks — the local clock may excuse an hour, never
accuse: a person abroad is held to the hours they keep there, a night at home stays a night
(both clocks agree), and a machine that keeps UTC is not news when summer time moves its local
hour. A one-off call from a country the principal has not settled in, or one whose address has
no time zone (private, AWS-internal, a lake written before the column existed), is judged on the
UTC clock: for a principal that mostly works from home that is its home clock, shifted by a
constant.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, seen_today
from trailsight.enrich.timezone import offset_words
from trailsight.finding import Reason


class OffHoursDetector(Detector):
    """Outside the principal's learned working hours, on the caller's local clock where settled (Sophos)."""

    name: ClassVar[str] = "off_hours"
    people_only: ClassVar[bool] = True
    source: ClassVar[str] = "Sophos learned working hours"
    requires: ClassVar[tuple[str, ...]] = (
        "event_time",
        "hour",
        "p_hour_days",
        "p_hour_last",
        "p_days",
        "p_last",
        "lhour",
        "utc_offset",
        "country",
        "city",
        "p_lhour_days",
        "p_lhour_last",
        "p_country_days",
        "p_country_last",
        "p_country_hours",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "min_days": 7,
        "usual_share": 0.1,
        "settled_days": 2,
        "settled_hours": 8,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        # Earlier days only: the event's own day must not teach the hours it is judged by.
        days = cols.num("p_days") - seen_today(cols, "p_last")
        utc_days = cols.num("p_hour_days") - seen_today(cols, "p_hour_last")
        local_days = cols.num("p_lhour_days") - seen_today(cols, "p_lhour_last")
        country_days = cols.num("p_country_days") - seen_today(cols, "p_country_last")
        country_hours = cols.num("p_country_hours")
        lhour = cols.num("lhour", fill=-1.0)
        has_country = cols.present("country")
        # Settled: earlier days and a working day's worth of clock hours from the country, and the
        # principal's previous call came from there too — a move, not a few calls from afar.
        previous_here = cols.epoch("p_country_last") == cols.epoch("p_last")
        enough = (country_days >= self.p("settled_days")) & (country_hours >= self.p("settled_hours"))
        settled = (lhour >= 0) & has_country & enough & previous_here
        span = np.maximum(days, 1.0)
        utc_score = np.clip(1.0 - utc_days / span / self.p("usual_share"), 0.0, 1.0)
        local_score = np.clip(1.0 - local_days / span / self.p("usual_share"), 0.0, 1.0)
        # The local clock may excuse an hour, never accuse: at home both clocks agree, and a
        # machine keeps UTC (its hour moves on the local clock when summer time starts).
        local = settled & (local_score <= utc_score)
        hour_days = np.where(local, local_days, utc_days)
        score = np.where(days >= self.p("min_days"), np.where(local, local_score, utc_score), 0.0)
        hours = cols.num("hour")
        offsets = cols.num("utc_offset")
        countries, cities = cols.text("country"), cols.text("city")

        def explain(i: int, s: float) -> list[Reason]:
            used = int(hour_days[i])
            details: dict[str, Any] = {
                "hour_utc": int(hours[i]),
                "clock": "local" if local[i] else "utc",
                "active_days_at_hour": used,
                "active_days": int(days[i]),
            }
            tail = f", an hour it worked in on {used} of its {int(days[i])} active days before this day"
            if local[i]:
                offset = int(offsets[i])
                place = cities[i] or countries[i] or "its location"
                details.update(hour_local=int(lhour[i]), utc_offset_minutes=offset, settled_days=int(country_days[i]))
                local_hour = int(lhour[i])
                msg = (
                    f"active at {local_hour:02d}:00 local time in {place} ({offset_words(offset)}), where it has "
                    f"called from on {int(country_days[i])} earlier days{tail} (hours counted on the local clock)"
                )
            else:
                msg = f"active at {int(hours[i]):02d}:00 UTC{tail}"
            return [Reason(detector=self.name, code="off_hours", score=s, message=msg, details=details)]

        return score, explain
