"""Helpers to read the simulator's output in tests."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SMALL = {"days": 6, "principals": 12, "seed": 3}


def trail_files(root: Path) -> list[Path]:
    """Every delivery file under ``root``, sorted."""
    return sorted((root / "AWSLogs").rglob("*.json.gz"))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of one delivery file."""
    with gzip.open(path, "rb") as fh:
        doc = json.load(fh)
    assert set(doc) == {"Records"}
    records: list[dict[str, Any]] = doc["Records"]
    return records


def all_records(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, record) for every record under ``root``."""
    for path in trail_files(root):
        for rec in read_records(path):
            yield path, rec
