"""Records a filter left out of a file are read by a later run without (or with a wider) filter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from faultkit import event, lake_ids, write_trail

from trailsight.ingest.pipeline import ingest

DAYS = ("2025-02-10", "2025-02-11", "2025-02-12", "2025-02-13")


def _logs(root: Path) -> list[str]:
    """One file holding records of four days (a delivery file may straddle days), two accounts."""
    records = []
    for d, day in enumerate(DAYS):
        for i in range(50):
            n = d * 100 + i
            account = "111122223333" if i % 2 else "444455556666"
            records.append(event(n, eventTime=f"{day}T{i % 24:02d}:00:00Z", recipientAccountId=account))
    write_trail(root, records, name="mixed")
    return sorted(r["eventID"] for r in records)


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def test_until_then_no_filter_reads_everything(tmp_path: Path) -> None:
    every = _logs(tmp_path / "logs")
    store = tmp_path / "s"
    first = ingest([tmp_path / "logs"], store, until=_at("2025-02-11"), workers=0)
    assert (first.new, first.filtered) == (50, 150)
    second = ingest([tmp_path / "logs"], store, workers=0)
    assert second.skipped_files == 0
    assert (second.new, second.duplicates) == (150, 50)
    assert lake_ids(store) == every
    assert len(lake_ids(store, distinct=False)) == len(every)
    third = ingest([tmp_path / "logs"], store, workers=0)
    assert (third.skipped_files, third.records) == (1, 0)


def test_overlapping_windows_and_accounts_end_exact(tmp_path: Path) -> None:
    every = _logs(tmp_path / "logs")
    store = tmp_path / "s"
    runs = [
        {"since": _at("2025-02-10"), "until": _at("2025-02-12")},
        {"since": _at("2025-02-11"), "until": _at("2025-02-13")},  # overlaps the first by a day
        {"since": _at("2025-02-11"), "until": _at("2025-02-12")},  # inside the first: nothing to read
        {"accounts": ["111122223333"]},
        {"since": _at("2025-02-13")},
    ]
    new = []
    for filters in runs:
        summary = ingest([tmp_path / "logs"], store, workers=0, **filters)  # type: ignore[arg-type]
        assert summary.records == summary.new + summary.duplicates + summary.filtered + summary.quarantined
        new.append((summary.skipped_files, summary.new))
    assert new == [(0, 100), (0, 50), (1, 0), (0, 25), (0, 25)]
    assert len(lake_ids(store, distinct=False)) == 200
    final = ingest([tmp_path / "logs"], store, workers=0)
    assert (final.new, final.duplicates) == (0, 200)
    assert lake_ids(store) == every
    assert ingest([tmp_path / "logs"], store, workers=0).skipped_files == 1
