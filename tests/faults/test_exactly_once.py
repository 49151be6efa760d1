"""Alerts go into a file exactly once, whatever moment delivery is killed at."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from trailsight.outputs.base import Alert, DeadLetterFile
from trailsight.outputs.jsonl import FileSink
from trailsight.store.layout import StoreLayout
from trailsight.watch import _state, deliver_pending

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

_DYING = """
import os, sys
from datetime import UTC, datetime
from pathlib import Path
from trailsight.outputs.base import DeadLetterFile
from trailsight.outputs.jsonl import FileSink
from trailsight.store.layout import StoreLayout
from trailsight.watch import deliver_pending

store, out, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

class DyingSink(FileSink):
    def send(self, alerts):
        if point == "before-write":
            os._exit(9)
        if point == "mid-write":
            data = b"".join(a.to_json() + b"\\n" for a in alerts)
            with self.path.open("ab") as fh:
                fh.write(data[: len(data) // 2 + 7])
                fh.flush()
                os.fsync(fh.fileno())
            os._exit(9)
        super().send(alerts)
        os._exit(9)  # after the fsync, before the outbox forgets the alerts

deliver_pending(StoreLayout(store), DyingSink(out), DeadLetterFile(store / "dead.jsonl"), datetime.now(UTC))
"""


def _alerts(n: int, start: int = 0) -> list[Alert]:
    return [
        Alert(
            finding_id=f"f{i:04d}",
            action="new",
            event_count=3,
            previous_count=0,
            run_id="r1",
            raised_at=NOW,
            finding={"id": f"f{i:04d}", "title": "x" * (50 + i)},
        )
        for i in range(start, start + n)
    ]


def _queue(store: Path, alerts: list[Alert]) -> None:
    with _state(StoreLayout(store)) as con:
        for seq, alert in enumerate(alerts, 1):
            con.execute(
                "INSERT INTO watch_outbox VALUES (?, ?, ?, ?)", [alert.alert_key, seq, alert.to_json().decode(), NOW]
            )


def _keys(out: Path) -> list[str]:
    return [orjson.loads(line)["alert_key"] for line in out.read_bytes().splitlines()] if out.exists() else []


def _outbox(store: Path) -> int:
    with _state(StoreLayout(store)) as con:
        row = con.execute("SELECT count(*) FROM watch_outbox").fetchone()
    return int(row[0]) if row else -1


@pytest.mark.parametrize("point", ["before-write", "mid-write", "after-fsync"])
@pytest.mark.parametrize("earlier", [0, 3], ids=["empty-file", "file-with-earlier-alerts"])
def test_a_killed_delivery_then_a_restart_writes_each_alert_once(tmp_path: Path, point: str, earlier: int) -> None:
    store, out = tmp_path / "s", tmp_path / "alerts.jsonl"
    store.mkdir()
    layout = StoreLayout(store)
    dead = DeadLetterFile(store / "dead.jsonl")
    if earlier:
        _queue(store, _alerts(earlier, start=100))
        assert deliver_pending(layout, FileSink(out), dead, NOW) == (earlier, 0)
    alerts = _alerts(5)
    _queue(store, alerts)
    child = subprocess.run([sys.executable, "-c", _DYING, str(store), str(out), point], check=False)
    assert child.returncode == 9
    assert _outbox(store) == 5  # the kill came before the outbox forgot them
    delivered, dead_lettered = deliver_pending(layout, FileSink(out), dead, NOW)
    assert dead_lettered == 0
    expected = [a.alert_key for a in _alerts(earlier, start=100)] + [a.alert_key for a in alerts]
    assert _keys(out) == expected
    assert _outbox(store) == 0
    assert deliver_pending(layout, FileSink(out), dead, NOW) == (0, 0)
    assert _keys(out) == expected
    assert delivered == {"before-write": 5, "mid-write": 5, "after-fsync": 5}[point]
