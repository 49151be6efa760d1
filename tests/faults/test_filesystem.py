"""Source discovery survives the file system: loops, dangling links, FIFOs, sockets, odd folders.

Each hostile object is skipped with one line naming its path and why; the good files around it
are ingested, and a watched folder keeps working.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import event, lake_ids, write_trail


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[str]]]:
    """A folder of good files among hostile objects: (folder, path → reason word, good event ids)."""
    root = tmp_path / "logs"
    sub = root / "sub"
    good = [
        write_trail(root, [event(1), event(2)], name="good"),
        write_trail(sub, [event(3)], name="deeper"),
        write_trail(root / "dir.json", [event(4)], name="inside"),  # a folder named like a file
    ]
    (root / "self.json").symlink_to(root / "self.json")  # self-loop
    (root / "ping.json").symlink_to(root / "pong.json")  # a pair
    (root / "pong.json").symlink_to(root / "ping.json")
    (sub / "up").symlink_to(root)  # a folder link to an ancestor
    (sub / "loop").symlink_to(sub / "loop")  # a loop not named like a log file
    (root / "gone.json").symlink_to(root / "nowhere.json")  # dangling
    os.mkfifo(root / "pipe.json")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.json"))
    expected = {
        str(root / "self.json"): "symlink loop",
        str(root / "ping.json"): "symlink loop",
        str(root / "pong.json"): "symlink loop",
        str(sub / "up"): "already walked",
        str(sub / "loop"): "symlink loop",
        str(root / "gone.json"): "dangling symlink",
        str(root / "pipe.json"): "FIFO",
        str(root / "sock.json"): "socket",
    }
    ids = sorted(event(i)["eventID"] for i in (1, 2, 3, 4))
    assert all(p.exists() for p in good)
    try:
        yield root, expected, ids
    finally:
        sock.close()


def _check_skipped(lines: list[str], expected: dict[str, str]) -> None:
    skipped = [line for line in lines if line.startswith("skipped ")]
    assert len(skipped) == len(expected), lines
    for path, why in expected.items():
        assert sum(1 for line in skipped if line.startswith(f"skipped {path}: ") and why in line) == 1, (path, lines)


def test_ingest_skips_each_hostile_object_with_one_line(
    hostile: tuple[Path, dict[str, str], list[str]], tmp_path: Path
) -> None:
    root, expected, ids = hostile
    store = tmp_path / "s"
    cmd = [sys.executable, "-m", "trailsight", "ingest", str(root), "-s", str(store), "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    _check_skipped(run.stderr.splitlines(), expected)
    summary = json.loads(run.stdout)
    assert (summary["records"], summary["new"], summary["quarantined"]) == (4, 4, 0)
    assert sorted(s["path"] for s in summary["skipped_paths"]) == sorted(expected)
    assert lake_ids(store) == ids
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["new"] == 0


def test_a_glob_matching_hostile_objects_skips_them(
    hostile: tuple[Path, dict[str, str], list[str]], tmp_path: Path
) -> None:
    root, expected, _ = hostile
    store = tmp_path / "s"
    cmd = [sys.executable, "-m", "trailsight", "ingest", str(root / "*.json*"), "-s", str(store), "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    top = {p: why for p, why in expected.items() if Path(p).parent == root}
    _check_skipped(run.stderr.splitlines(), top)
    assert lake_ids(store) == sorted(event(i)["eventID"] for i in (1, 2, 4))


def test_watch_keeps_working_on_a_hostile_folder(
    hostile: tuple[Path, dict[str, str], list[str]], tmp_path: Path
) -> None:
    root, expected, ids = hostile
    store = tmp_path / "s"
    out = tmp_path / "alerts.jsonl"
    cmd = [sys.executable, "-m", "trailsight", "watch", str(root), "-s", str(store), "--once", "-o", f"file:{out}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    skipped = [f"skipped {d['path']}: {d['reason']}" for d in lines if d.get("event") == "watch.skipped"]
    _check_skipped(skipped, expected)
    assert lake_ids(store) == ids


def test_a_fifo_put_in_a_files_place_after_discovery_does_not_block(tmp_path: Path) -> None:
    from trailsight.ingest.convert import SourceCounts, read_source
    from trailsight.ingest.quarantine import QuarantineEntry
    from trailsight.ingest.sources import PathFilter, SourceFile

    fifo = tmp_path / "late.json"
    os.mkfifo(fifo)
    counts = SourceCounts()
    items = list(read_source(SourceFile(key=str(fifo), size=10, version="1"), PathFilter(), counts))
    assert len(items) == 1
    assert isinstance(items[0], QuarantineEntry)
    assert "FIFO" in items[0].reason
    assert counts.quarantined == 1
