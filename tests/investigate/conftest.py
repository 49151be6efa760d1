"""A store holding the real invictus-ir capture, ingested once per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
INVICTUS = REAL / "invictus-ir_aws_dataset" / "CloudTrail"


@pytest.fixture(scope="session")
def invictus_records() -> list[dict[str, Any]]:
    """The raw CloudTrail records of the capture (to check pivots against)."""
    if not INVICTUS.is_dir():
        pytest.skip("real data not present")
    records: list[dict[str, Any]] = []
    for path in sorted(INVICTUS.glob("*.json")):
        records += json.loads(path.read_text())["Records"]
    return records


@pytest.fixture(scope="session")
def invictus_store(tmp_path_factory: pytest.TempPathFactory, invictus_records: list[dict[str, Any]]) -> Path:
    """A store with the capture ingested by the real pipeline."""
    from trailsight.ingest import ingest

    root = tmp_path_factory.mktemp("invictus-store")
    summary = ingest([INVICTUS], root, workers=0)
    assert summary.new == len(invictus_records)
    return root
