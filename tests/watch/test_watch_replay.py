"""An hour of CloudTrail delivered file by file to a running ``trailsight watch``, killed half-way.

The real invictus-ir capture (55 trail files, 2023-07-10 11:42–12:37Z) is copied into the
watched folder on a simulated clock that the test advances one minute at a time, so the
folder grows minute by minute, between the watch's cycles as well as at them: each file
appears one to five minutes after the time in its name (CloudTrail delivers within about
five), spread over those minutes by its position, and every seventh file ten minutes later
still (a late delivery). The delivery delay does not depend on the step. The watch process
reads the time from the clock file and runs a cycle every ten simulated minutes, so the hour
runs in about a minute and a half. Half-way through it is killed with SIGKILL in the middle of a cycle
and started again. At the end the findings it raised
must be exactly those one batch ``detect`` over the whole hour raises: none missed, none
raised twice, each with the same events.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailsight import pipeline
from trailsight.features.source import quiet_ibis
from trailsight.stories import fold

pytestmark = pytest.mark.slow

INVICTUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "invictus-ir_aws_dataset" / "CloudTrail"
_STAMP = re.compile(r"_(\d{8}T\d{4})Z_")
START = datetime(2023, 7, 10, 11, 45, tzinfo=UTC)
END = datetime(2023, 7, 10, 12, 55, tzinfo=UTC)
KILL_AT = datetime(2023, 7, 10, 12, 15, tzinfo=UTC)
STEP = timedelta(minutes=1)  # the clock advances, and the folder grows, a minute at a time
DELAY = 5  # a file appears 1..DELAY minutes after its stamp (by its position)
LATE_BY = timedelta(minutes=10)  # every seventh file is delivered this much later still
EVERY = timedelta(minutes=10)  # watch runs every ten
LATE = os.environ.get("TS_LATE", "1") == "1"


def _deliveries() -> list[tuple[datetime, Path]]:
    files = sorted(INVICTUS.glob("*.json"))
    out = []
    for i, path in enumerate(files):
        match = _STAMP.search(path.name)
        assert match, path.name
        stamp = datetime.strptime(match.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)
        delay = timedelta(minutes=1 + i % DELAY) + (LATE_BY if i % 7 == 3 and LATE else timedelta(0))
        out.append((stamp + delay, path))
    return out


class Watcher:
    """One ``trailsight watch`` process reading its time from a clock file."""

    def __init__(self, tmp: Path, source: Path, store: Path, alerts: Path, clock: Path, config: Path) -> None:
        self.log = tmp / f"watch-{time.monotonic_ns()}.log"
        cmd = [
            sys.executable,
            "-m",
            "trailsight",
            "watch",
            str(source),
            "--store",
            str(store),
            "--every",
            "10m",
            "--lookback",
            "20m",
            "--late",
            "10m",
            "--output",
            f"file:{alerts}",
            "--clock-file",
            str(clock),
            "--config",
            str(config),
        ]
        self.stderr = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr)

    def reports(self) -> list[dict[str, Any]]:
        lines = self.log.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.startswith(b"{")]

    def wait_cycle(self, now: datetime, timeout: float = 90.0) -> dict[str, Any]:
        want = now.isoformat().replace("+00:00", "Z")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rep in self.reports():
                if rep.get("event") == "watch.cycle" and rep["now"] == want:
                    return rep
                assert rep.get("event") != "watch.error", rep
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        raise AssertionError(f"no cycle at {want}: {self.log.read_text()}")

    def close(self) -> None:
        self.stderr.close()


def test_watch_hour_with_kill_matches_batch(tmp_path: Path) -> None:
    if not INVICTUS.is_dir():
        pytest.skip(f"real captures not found at {INVICTUS}")
    source, store = tmp_path / "incoming", tmp_path / "store"
    source.mkdir()
    alerts, clock, config = tmp_path / "alerts.jsonl", tmp_path / "clock", tmp_path / "trailsight.toml"
    config.write_text("[ingest]\nworkers = 0\n")
    pending = _deliveries()

    def deliver(now: datetime) -> None:
        while pending and pending[0][0] <= now:
            _, path = pending.pop(0)
            shutil.copy(path, source / path.name)
        pending.sort()

    pending.sort()
    minutes = {at for at, _ in pending}
    # The folder grows on many minutes, most of them off the watch's ten-minute ticks.
    assert len(minutes) >= 30
    assert sum(1 for at in minutes if (at - START) % EVERY != timedelta(0)) >= 25
    now = START
    deliver(now)
    clock.write_text(now.isoformat())
    watcher = Watcher(tmp_path, source, store, alerts, clock, config)
    killed = False
    try:
        watcher.wait_cycle(now)
        while now < END:
            now += STEP
            deliver(now)
            clock.write_text(now.isoformat())
            if now == KILL_AT and not killed:
                time.sleep(0.5)  # let the cycle start: the kill lands in ingest or detect
                watcher.proc.send_signal(signal.SIGKILL)
                assert watcher.proc.wait(30) == -signal.SIGKILL
                watcher.close()
                killed = True
                watcher = Watcher(tmp_path, source, store, alerts, clock, config)
            if (now - START) % EVERY == timedelta(0):
                watcher.wait_cycle(now)
        assert not pending
        watcher.proc.send_signal(signal.SIGTERM)
        assert watcher.proc.wait(60) == 0
    finally:
        if watcher.proc.poll() is None:
            watcher.proc.kill()
            watcher.proc.wait()
        watcher.close()

    lines = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert lines, "watch raised nothing"
    keys = Counter(line["alert_key"] for line in lines)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    news = Counter(line["finding_id"] for line in lines if line["action"] == "new")
    assert max(news.values()) == 1
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        latest[line["finding_id"]] = line["finding"]
    superseded = {old for line in lines for old in line["supersedes"]}
    for old in superseded:
        del latest[old]

    with quiet_ibis():
        batch = pipeline.detect(store, START - timedelta(minutes=10), END, None, save=False)
    assert batch
    # watch raises a story's members through their story: compare with the folded batch.
    batch = fold(batch)
    assert set(latest) == {f.id for f in batch}
    for finding in batch:
        assert sorted(latest[finding.id]["event_ids"]) == sorted(finding.event_ids), finding.id
