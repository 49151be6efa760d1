"""The time zone of a source address, and its offset from UTC at an event's time.

The zone comes from the geolocation record of the address: a record that names its zone
(MaxMind GeoLite2 / GeoIP2 ``location.time_zone``, a DB-IP ``timezone`` when filled) is taken
as it is; otherwise the record's latitude and longitude go to ``timezonefinder`` (offline
zone boundaries from OpenStreetMap data, MIT). The offset at each event's instant then comes
from the IANA database through :mod:`zoneinfo` (the ``tzdata`` package where the system has no
zone files), so summer time is counted where the zone keeps it.

An address without coordinates (private, AWS-internal, an unknown range) has no zone: both
columns stay null, and so do they in a lake written before the columns existed. The features
then count that event's hours in UTC (see :mod:`trailsight.detectors.off_hours`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SECONDS_PER_HOUR = 3600


@cache
def _finder() -> Any:
    # Loaded on first use only: its boundary data costs a fraction of a second to open.
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def zone_of_record(rec: Any) -> str | None:
    """The IANA zone of a geolocation record (DB-IP lite or GeoLite2 layout); None when it has no place."""
    if not isinstance(rec, dict):
        return None
    named: Any = rec.get("timezone")
    location = rec.get("location")
    if isinstance(location, dict):
        named = named or location.get("time_zone")
        lat, lon = location.get("latitude"), location.get("longitude")
    else:
        lat, lon = rec.get("latitude"), rec.get("longitude")
    if isinstance(named, str) and named and _known(named):
        return named
    return zone_at(lat, lon)


def zone_at(lat: Any, lon: Any) -> str | None:
    """The IANA zone at a latitude and longitude (degrees); None for missing or impossible values."""
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    name = _finder().timezone_at(lat=float(lat), lng=float(lon))
    return name if isinstance(name, str) and _known(name) else None


@cache
def _known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def utc_offsets(zones: pa.Array, times: pa.Array) -> pa.Array:
    """Minutes east of UTC of each row's zone at its time (int64; null where the zone is null).

    ``zones`` holds IANA names, ``times`` UTC timestamps. The offset can only change on the
    hour in every zone in use today, so it is worked out once per distinct (zone, UTC hour).
    """
    out = np.zeros(len(zones), dtype=np.int64)
    valid = pc.is_valid(zones).to_numpy(zero_copy_only=False)
    if not valid.any():
        return pa.nulls(len(zones), pa.int64())
    encoded = zones.dictionary_encode()
    names: list[str] = encoded.dictionary.to_pylist()
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    micros = pc.cast(times, pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0)
    hours = micros.to_numpy(zero_copy_only=False) // (_SECONDS_PER_HOUR * 1_000_000)
    pairs = codes * (1 << 32) + (hours - hours.min())
    distinct, back = np.unique(pairs[valid], return_inverse=True)
    h0 = int(hours.min())
    values = np.empty(len(distinct), dtype=np.int64)
    for i, pair in enumerate(distinct.tolist()):
        zone = ZoneInfo(names[pair >> 32])
        at = datetime.fromtimestamp((h0 + (pair & 0xFFFFFFFF)) * _SECONDS_PER_HOUR, tz=UTC)
        offset = at.astimezone(zone).utcoffset()
        values[i] = 0 if offset is None else int(offset.total_seconds() // 60)
    out[valid] = values[back]
    return pa.array(out, pa.int64(), mask=~valid)


def offset_words(minutes: int) -> str:
    """``UTC+0``, ``UTC-5``, ``UTC+5:30``."""
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"UTC{sign}{h}" + (f":{m:02d}" if m else "")


__all__ = ["offset_words", "utc_offsets", "zone_at", "zone_of_record"]
