"""A run killed mid-way (SIGKILL) leaves whole files in the lake; the re-run ends exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import event, s3_layout, write_trail

Query = Callable[..., list[tuple[Any, ...]]]
FILES = 24
PER_FILE = 1500


def _make_logs(root: Path) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for f in range(FILES):
        day = f"2025-03-{3 + f % 3:02d}"
        records = [
            event(f * PER_FILE + i, eventTime=f"{day}T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z")
            for i in range(PER_FILE)
        ]
        # Each file also repeats two records of the previous file, as CloudTrail redelivery does.
        if f:
            records += [
                event((f - 1) * PER_FILE + i, eventTime=f"2025-03-{3 + (f - 1) % 3:02d}T00:00:0{i}Z") for i in range(2)
            ]
        path = write_trail(
            s3_layout(root, "111122223333", "eu-west-1", day),
            records,
            name=f"111122223333_CloudTrail_eu-west-1_f{f:03d}",
        )
        ids[str(path)] = {r["eventID"] for r in records}
    return ids


def _wait_for_parquet(store: Path, proc: subprocess.Popen[bytes], batch: int, timeout: float = 120) -> bool:
    """Wait until a file of batch ``batch`` is renamed into the lake (so batches before it committed)."""
    deadline = time.monotonic() + timeout
    marker = f"-{batch:05d}-"
    lake = store / "lake"
    while time.monotonic() < deadline and proc.poll() is None:
        if lake.is_dir() and any(not p.name.startswith(".") and marker in p.name for p in lake.rglob("*.parquet")):
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "batch"), [("0", 2), ("2", 1)])
def test_sigkill_then_rerun_gives_exactly_the_events(tmp_path: Path, query: Query, workers: str, batch: int) -> None:
    logs = tmp_path / "logs"
    per_file = _make_logs(logs)
    expected = set().union(*per_file.values())
    store = tmp_path / "s"
    cmd = [
        sys.executable,
        "-m",
        "trailsight",
        "ingest",
        str(logs),
        "-s",
        str(store),
        "--batch-rows",
        "1000",
        "--workers",
        workers,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = _wait_for_parquet(store, proc, batch)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert started or proc.returncode == 0
    killed_mid_way = proc.returncode == -signal.SIGKILL
    # Whatever was committed is whole files: every file with an event in the lake has all of its
    # events there (a redelivered event may sit under the file that brought it first).
    if (store / "state.duckdb").exists():
        rows = query(store, "SELECT event_id, source_file FROM events")
        in_lake = {r[0] for r in rows}
        assert len(in_lake) == len(rows)
        for source in {r[1] for r in rows}:
            assert per_file[source] <= in_lake, source
        if batch == 2 and killed_mid_way:
            assert 0 < len(in_lake) < len(expected)  # killed after the first commit, before the last
    rerun = subprocess.run([*cmd[:-2], "--workers", "0", "--json"], capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    ids = {r[0] for r in query(store, "SELECT event_id FROM events")}
    assert ids == expected
    assert query(store, "SELECT count(*) FROM events") == [(len(expected),)]
    # The killed run's uncommitted files are gone: every Parquet file on disk is registered.
    on_disk = {p for p in (store / "lake").rglob("*") if p.is_file()}
    assert on_disk == {p for p in on_disk if not p.name.startswith(".")}
    from trailsight.store.lake import lake_files
    from trailsight.store.layout import StoreLayout

    assert set(lake_files(StoreLayout(store))) == on_disk
    assert killed_mid_way or proc.returncode == 0
