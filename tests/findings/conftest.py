"""Fixtures for the findings tests: the real Stratus Red Team capture ingested into a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trailsight.investigate.lake import open_lake

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
INVICTUS = REAL / "invictus-ir_aws_dataset" / "CloudTrail"


@pytest.fixture(scope="session")
def invictus_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the invictus-ir capture ingested by the real pipeline (read it, do not write it)."""
    if not INVICTUS.is_dir():
        pytest.skip("real data not present")
    from trailsight.ingest import ingest

    root = tmp_path_factory.mktemp("invictus")
    ingest([INVICTUS], root, workers=0)
    return root


@pytest.fixture
def invictus_lake(invictus_store: Path) -> Iterator[Any]:
    """The invictus store's lake as the DuckDB view ``events``."""
    with open_lake(invictus_store) as con:
        yield con
