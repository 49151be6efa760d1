"""Fixtures for the enrichment tests: the real DB-IP / ASN data files (``trailsight data fetch``, ``make data``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trailsight.config import data_dir
from trailsight.enrich import Enricher
from trailsight.enrich.enricher import ASN_V4, DBIP_V4

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/real (the real public captures); skips when absent."""
    if not REAL.is_dir():
        pytest.skip(f"real captures not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def data_folder() -> Path:
    """The folder holding the geo / ASN files; skips when they have not been fetched."""
    folder = data_dir()
    if not (folder / DBIP_V4).is_file() or not (folder / ASN_V4).is_file():
        pytest.skip(f"geo/ASN data not in {folder}: run `trailsight data fetch`")
    return folder


@pytest.fixture(scope="session")
def enricher(data_folder: Path) -> Enricher:
    """An enricher over the real data files (shared: its caches only speed later tests up)."""
    return Enricher.from_settings()
