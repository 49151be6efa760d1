"""``rare_api_for_city`` and ``rare_api_for_country`` — an API rarely called from this place.

Source: Elastic's ``rare_method_for_a_city`` and ``rare_method_for_a_country`` ML jobs (``rare``
by ``event.action`` partitioned by ``source.geo.city_name`` / ``country_iso_code``; the rules
alert at anomaly score 50).

Algorithm, in plain words: for the event's city (or country), count the clock hours in which
anything was called from there before the event, across the whole organisation, and the hours
in which this API was. A place needs ``min_hours`` (20) hours of history to have a baseline —
a brand-new place is the network detector's business. An API never called from the place
scores 1; otherwise its share of the place's hours is graded like Elastic's ``rare``: 0.75 at
``rare_share`` (1 %) and rising as it gets rarer. Events without a location (AWS-internal
calls) score 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, rarity_score
from trailsight.finding import Reason


class _RareApiForPlace(Detector):
    kind: ClassVar[str] = "what"
    default_enabled: ClassVar[bool] = False
    place: ClassVar[str] = "city"
    defaults: ClassVar[dict[str, float | int | bool]] = {"threshold": 50, "min_hours": 20, "rare_share": 0.01}

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        pl = self.place
        where = cols.present(pl)
        place_hours = cols.num(f"{pl}_hours")
        api_n = cols.num(f"api_{pl}_n")
        share = cols.num(f"api_{pl}_hours") / np.maximum(place_hours, 1.0)
        known_place = where & (place_hours >= self.p("min_hours"))
        score = np.where(known_place, np.where(api_n == 0, 1.0, rarity_score(share, self.p("rare_share"))), 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            api, value = cols.text("api")[i], cols.text(pl)[i]
            if api_n[i] == 0:
                code, msg = f"new_api_for_{pl}", f"{api} was never called from {value} before"
            else:
                code, msg = f"rare_api_for_{pl}", f"{api} is rare from {value} ({share[i]:.1%} of its hours)"
            details = {"api": api, pl: value, "calls_before": int(api_n[i]), f"{pl}_hours": int(place_hours[i])}
            return [Reason(detector=self.name, code=code, score=s, message=msg, details=details)]

        return score, explain


class RareApiForCityDetector(_RareApiForPlace):
    """API rare for the source city (Elastic rare_method_for_a_city)."""

    name: ClassVar[str] = "rare_api_for_city"
    source: ClassVar[str] = "Elastic rare_method_for_a_city"
    place: ClassVar[str] = "city"
    requires: ClassVar[tuple[str, ...]] = ("api", "city", "city_hours", "api_city_n", "api_city_hours")


class RareApiForCountryDetector(_RareApiForPlace):
    """API rare for the source country (Elastic rare_method_for_a_country)."""

    name: ClassVar[str] = "rare_api_for_country"
    source: ClassVar[str] = "Elastic rare_method_for_a_country"
    place: ClassVar[str] = "country"
    requires: ClassVar[tuple[str, ...]] = ("api", "country", "country_hours", "api_country_n", "api_country_hours")
