"""watch killed (SIGKILL, SIGTERM) at many moments of a cycle: no process left, nothing lost, nothing twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from faultkit import children, lake_ids, wait_gone

NOW = "2025-02-13T00:00:00Z"
pytestmark = pytest.mark.slow


def _watch(logs: Path, store: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trailsight",
        "watch",
        str(logs),
        "-s",
        str(store),
        "--once",
        "--now",
        NOW,
        "--lookback",
        "3d",
        "-o",
        f"file:{out}",
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], int]:
    """Simulated logs, and a clean run's alert keys and lake size."""
    root = tmp_path_factory.mktemp("watchkills")
    logs = root / "logs"
    subprocess.run(
        [sys.executable, "-m", "trailsight", "simulate", "--out", str(logs), "--days", "12", "--principals", "12"],
        check=True,
        capture_output=True,
    )
    out = root / "alerts.jsonl"
    run = subprocess.run(_watch(logs, root / "s", out), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    keys = [orjson.loads(line)["alert_key"] for line in out.read_bytes().splitlines()]
    assert keys, "the reference run raised nothing"
    return logs, keys, len(lake_ids(root / "s", distinct=False))


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("delay", [0.4, 1.0, 1.6, 2.4, 3.5, 5.0])
def test_a_killed_watch_leaves_no_process_and_a_rerun_ends_exact(
    reference: tuple[Path, list[str], int], tmp_path: Path, signum: int, delay: float
) -> None:
    logs, keys, rows = reference
    store, out = tmp_path / "s", tmp_path / "alerts.jsonl"
    proc = subprocess.Popen(
        _watch(logs, store, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    seen: set[int] = set()
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= _descendants(proc.pid)
        time.sleep(0.01)
    if proc.poll() is None:
        seen |= _descendants(proc.pid)
        os.kill(proc.pid, signum)
    proc.wait(timeout=120)
    left = wait_gone(seen)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == set(), "processes outlived the killed watch"
    rerun = subprocess.run(_watch(logs, store, out), capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    got = [orjson.loads(line)["alert_key"] for line in out.read_bytes().splitlines()] if out.exists() else []
    assert sorted(got) == sorted(keys)  # every alert, none twice
    assert len(lake_ids(store, distinct=False)) == len(lake_ids(store)) == rows
    shutil.rmtree(store)
