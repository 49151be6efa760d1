"""``geo_velocity`` — two calls of one actor farther apart than anyone travels in the time between.

Source: the "impossible travel" rules of Microsoft Entra ID Protection, Okta and Elastic
(``Unusual Country For User`` / velocity checks), for CloudTrail source addresses.

Algorithm, in plain words: each located call (coordinates from DB-IP, enrichment) is compared
with the actor's previous located call of the same UTC day (``x_prev_*`` features). The
great-circle distance divided by the time between the two is the speed the caller would have
needed; at least ``min_km`` (500) apart and faster than ``max_kmh`` (1000, an airliner), the call
scores 0.9. The actor is the person behind a role session or the IAM user, so one access key
used from two places is one actor in two places.

Addresses that geolocate badly are not travel. The previous call must come from a network whose
place is its caller's (home broadband, an office, an unclassified network: ``PLACED`` in
:mod:`trailsight.enrich.netclass`); the current one too, or else a rented network (hosting,
commercial VPN, Tor) whose ASN the principal never used before (``new_hours``, 24, after its first
sighting): a hop through the person's own VPN or their VPS is where their VPN exits, not where
they are. Mobile carriers, AWS, CI runners and the organisation's VPN (``[network] vpn``) never
count, nor does a call from the organisation's learned egress (a /24 or /48 that at least
``egress_principals``, 5, principals of the account used before, as in ``unusual_network``). A
home address placed in a neighbouring city stays under ``min_km``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from trailsight.detectors.base import Columns, Detector, FloatArray, recently_new
from trailsight.enrich.netclass import EGRESS_PRINCIPALS, PLACED, RENTED, label
from trailsight.finding import Reason

#: Mean radius of the Earth, km.
EARTH_KM = 6371.0088

#: The score of a call that needed an impossible speed.
IMPOSSIBLE = 0.9


def great_circle_km(lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray) -> FloatArray:
    """Haversine distance in km between points given in degrees (NaN where any is NaN)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    out: FloatArray = 2.0 * EARTH_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return out


class GeoVelocityDetector(Detector):
    """Impossible travel between two calls of the same actor (Entra ID / Okta velocity)."""

    name: ClassVar[str] = "geo_velocity"
    source: ClassVar[str] = "Entra ID / Okta impossible travel"
    requires: ClassVar[tuple[str, ...]] = (
        "event_time",
        "latitude",
        "longitude",
        "net_class",
        "country",
        "city",
        "asn",
        "as_org",
        "source_ip",
        "access_key_id",
        "x_prev_time",
        "x_prev_lat",
        "x_prev_lon",
        "x_prev_class",
        "p_asn_n",
        "p_asn_first",
        "a_net_principals",
    )
    defaults: ClassVar[dict[str, float | int | bool]] = {
        "threshold": 50,
        "max_kmh": 1000.0,
        "min_km": 500.0,
        "new_hours": 24,
        "egress_principals": EGRESS_PRINCIPALS,
    }

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        nan = float("nan")
        before = cols.isin("x_prev_class", PLACED)
        new_asn = recently_new(cols, "p_asn_n", "p_asn_first", self.p("new_hours"))
        egress = cols.num("a_net_principals") >= self.p("egress_principals")
        judged = before & ~egress & (cols.isin("net_class", PLACED) | (cols.isin("net_class", RENTED) & new_asn))
        # The distance and speed of the judged calls only (a small share of a day's calls).
        at = np.flatnonzero(judged)
        km = np.full(len(judged), nan)
        km[at] = great_circle_km(
            cols.num("x_prev_lat", nan)[at],
            cols.num("x_prev_lon", nan)[at],
            cols.num("latitude", nan)[at],
            cols.num("longitude", nan)[at],
        )
        hours = (cols.epoch("event_time") - cols.epoch("x_prev_time")) / 3600.0
        # Calls in the same minute still need the distance covered in a minute.
        kmh = km / np.maximum(np.nan_to_num(hours, nan=np.inf), 1.0 / 60.0)
        fast = judged & (np.nan_to_num(km) >= self.p("min_km")) & (np.nan_to_num(kmh) > self.p("max_kmh"))
        score = np.where(fast, IMPOSSIBLE, 0.0)

        def explain(i: int, s: float) -> list[Reason]:
            now = cols.text("net_class")
            city, country = cols.text("city")[i], cols.text("country")[i]
            where = ", ".join(x for x in (city, country) if x) or "an unknown place"
            minutes = hours[i] * 60.0
            gap = f"{minutes:.0f} minutes" if minutes < 120 else f"{hours[i]:.1f} hours"
            key = cols.text("access_key_id")[i]
            asn, org = cols.text("asn")[i], cols.text("as_org")[i]
            details = {
                "km": round(float(km[i])),
                "hours": round(float(hours[i]), 3),
                "kmh": round(float(kmh[i])),
                "max_kmh": self.p("max_kmh"),
                "previous_lat": float(cols.num("x_prev_lat", nan)[i]),
                "previous_lon": float(cols.num("x_prev_lon", nan)[i]),
                "previous_class": cols.text("x_prev_class")[i],
                "net_class": now[i],
                "source_ip": cols.text("source_ip")[i],
                "asn": asn,
                "as_org": org,
                "access_key_id": key,
            }
            via = f" ({label(now[i])}, AS{asn} {org})" if asn is not None else f" ({label(now[i])})"
            message = (
                f"called from {where}{via}, {km[i]:,.0f} km from its previous call {gap} earlier: "
                f"{kmh[i]:,.0f} km/h, faster than anyone travels ({self.p('max_kmh'):,.0f} km/h)"
            )
            return [Reason(detector=self.name, code="impossible_travel", score=s, message=message, details=details)]

        return score, explain
