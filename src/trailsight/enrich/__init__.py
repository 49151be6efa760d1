"""Enrichment of normalised events: network kind, geolocation, ASN, user-agent family, API meaning.

The public face is :class:`Enricher` (``Enricher.from_settings(settings).enrich(table)``),
the API catalog's :func:`lookup`, and :data:`GEO_ATTRIBUTION`, the credit line DB-IP's
licence asks for wherever geolocation is shown.
"""

from __future__ import annotations

from trailsight.enrich.catalog import ApiInfo, lookup
from trailsight.enrich.enricher import ENRICHED_COLUMNS, Enricher, GeoOptions
from trailsight.enrich.geo import GEO_ATTRIBUTION, GEO_ATTRIBUTION_HTML
from trailsight.enrich.network import AWS_ASNS
from trailsight.enrich.useragent import classify_user_agent

__all__ = [
    "AWS_ASNS",
    "ENRICHED_COLUMNS",
    "GEO_ATTRIBUTION",
    "GEO_ATTRIBUTION_HTML",
    "ApiInfo",
    "Enricher",
    "GeoOptions",
    "classify_user_agent",
    "lookup",
]
