"""Killing ingest (SIGKILL or SIGTERM) leaves no worker behind and no lock held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import children, event, lake_ids, s3_layout, wait_gone, write_trail

FILES = 16
PER_FILE = 2000


def _logs(root: Path) -> set[str]:
    ids: set[str] = set()
    for f in range(FILES):
        records = [event(f * PER_FILE + i) for i in range(PER_FILE)]
        write_trail(s3_layout(root, "111122223333", "eu-west-1", "2025-03-03"), records, name=f"t{f:03d}", gz=False)
        ids |= {r["eventID"] for r in records}
    return ids


def _ingest(logs: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trailsight", "ingest", str(logs), "-s", str(store), *extra]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("after", [0.0, 0.5, 1.2], ids=["pool-start", "mid-run", "late"])
def test_killed_ingest_leaves_no_worker_and_no_lock(tmp_path: Path, signum: int, after: float) -> None:
    expected = _logs(tmp_path / "logs")
    store = tmp_path / "s"
    cmd = _ingest(tmp_path / "logs", store, "--workers", "2", "--batch-rows", "1000")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
        workers = children(proc.pid)
        time.sleep(0.01)
    assert len(workers) >= 2, "the pool never started"
    time.sleep(after)
    os.kill(proc.pid, signum)
    proc.wait()
    left = wait_gone(workers)
    for pid in left:  # do not leave them behind the failed test
        os.kill(pid, signal.SIGKILL)
    assert left == set(), "workers outlived their ingest"
    rerun = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert lake_ids(store) == sorted(expected)
    assert len(lake_ids(store, distinct=False)) == len(expected)


_LEFTOVER = """
import fcntl, os, sys, time
fh = open(sys.argv[1], "w+b")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
fh.write(f"{os.getpid()}\\n".encode()); fh.flush()
child = os.fork()
if child == 0:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1); os.dup2(null, 2)
    time.sleep(60)
    os._exit(0)
print(os.getpid(), child, flush=True)
"""


def test_a_lock_left_to_children_of_an_exited_ingest_names_them(tmp_path: Path) -> None:
    """An old writer's children still holding the lock: the message says so and names the pids."""
    logs = tmp_path / "logs"
    write_trail(logs, [event(1)])
    store = tmp_path / "s"
    store.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", _LEFTOVER, str(store / ".ingest.lock")], capture_output=True, text=True, check=True
    )
    writer, holder = map(int, out.stdout.split())
    try:
        run = subprocess.run(_ingest(logs, store), capture_output=True, text=True, check=False)
        assert run.returncode == 1
        message = run.stderr.strip()
        assert len(message.splitlines()) == 1
        assert f"(pid {writer}) has exited" in message
        assert f"still held by pid {holder}" in message
    finally:
        os.kill(holder, signal.SIGKILL)
    assert wait_gone({holder}) == set()
    again = subprocess.run(_ingest(logs, store), capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert lake_ids(store) == [event(1)["eventID"]]
