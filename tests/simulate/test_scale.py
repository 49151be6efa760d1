"""Scale mode: exact event counts, valid records, same bytes whatever the number of workers."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from sim_helpers import all_records, trail_files

from trailsight.errors import ConfigError
from trailsight.simulate import simulate_scale


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in trail_files(root):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_scale_mode_writes_exactly_n_valid_events(tmp_path: Path) -> None:
    res = simulate_scale(tmp_path / "one", events=3001, days=2, principals=40, seed=9, workers=1)
    assert res.events == 3001
    assert res.files == len(trail_files(tmp_path / "one"))
    ids = set()
    for _, rec in all_records(tmp_path / "one"):
        assert rec["eventVersion"] in ("1.09", "1.10")
        assert uuid.UUID(rec["eventID"]).version == 4
        assert rec["eventTime"].startswith(("2025-02-03T", "2025-02-04T"))
        assert rec["userIdentity"]["type"] in ("IAMUser", "AssumedRole")
        ids.add(rec["eventID"])
    assert len(ids) == 3001
    assert res.events_per_second > 0


def test_scale_mode_is_deterministic_across_workers(tmp_path: Path) -> None:
    a = simulate_scale(tmp_path / "a", events=2000, days=2, principals=30, seed=4, workers=1)
    b = simulate_scale(tmp_path / "b", events=2000, days=2, principals=30, seed=4, workers=2)
    simulate_scale(tmp_path / "c", events=2000, days=2, principals=30, seed=5, workers=1)
    assert a.files == b.files
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    with pytest.raises(ConfigError, match="--events"):
        simulate_scale(tmp_path / "d", events=0)


def test_scale_output_ingests_with_zero_quarantined(tmp_path: Path) -> None:
    from trailsight.ingest import ingest

    res = simulate_scale(tmp_path / "logs", events=2500, days=1, principals=40, seed=3, workers=1)
    summary = ingest([tmp_path / "logs" / "AWSLogs"], tmp_path / "store", workers=0)
    assert summary.quarantined == 0
    assert summary.new == res.events
