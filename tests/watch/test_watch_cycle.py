"""One watch cycle against a real state database, with ingest and detect replaced by stand-ins."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest

from trailsight.config import Settings
from trailsight.errors import ConfigError
from trailsight.finding import Finding
from trailsight.outputs import Alert, Delivery, FileSink
from trailsight.store.layout import StoreLayout
from trailsight.watch import (
    EXIT_DEAD_LETTERED,
    FixedClock,
    WatchOptions,
    parse_duration,
    read_raised,
    read_watermark,
    run_cycle,
    run_watch,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def finding(fid: str, first: datetime, count: int, *, score: float = 0.8, status: str = "Open") -> Finding:
    return Finding(
        id=fid,
        finding_type="Discovery:IAMUser/AnomalousBehavior",
        title=f"finding {fid}",
        principal="arn:aws:iam::111111111111:user/alice",
        actor="arn:aws:iam::111111111111:user/alice",
        account_id="111111111111",
        identity_type="IAMUser",
        first_seen=first,
        last_seen=first + timedelta(minutes=count),
        count=count,
        score=score,
        risk_score=int(score * 100),
        severity=5.0,
        severity_label="Medium",
        confidence="Medium",
        tactic="Discovery",
        tactic_id="TA0007",
        technique=None,
        event_ids=[f"{fid}-e{i}" for i in range(count)],
        reasons=[],
        status=status,
    )


@dataclass
class FakeDetect:
    """Returns the findings queued for the next call and records the windows asked for."""

    queue: list[list[Finding]] = field(default_factory=list)
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)

    def __call__(
        self, layout: StoreLayout, since: datetime, until: datetime, settings: Settings, detectors: Sequence[str] | None
    ) -> list[Finding]:
        self.windows.append((since, until))
        return self.queue.pop(0) if self.queue else []


def no_ingest(source: str, layout: StoreLayout, settings: Settings) -> tuple[int, int, int]:
    return 0, 0, 0


@dataclass
class ListSink:
    name: str = "list"
    sent: list[Alert] = field(default_factory=list)
    fail: bool = False

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        if self.fail:
            return Delivery(failed=[(a, "down") for a in alerts], attempts=len(alerts))
        self.sent.extend(alerts)
        return Delivery(delivered=list(alerts), attempts=len(alerts))

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    (root / "lake" / "account_id=111111111111" / "event_date=2026-03-02").mkdir(parents=True)
    (root / "lake" / "account_id=111111111111" / "event_date=2026-03-02" / "b.parquet").write_bytes(b"")
    return root


def cycle(store: Path, detect: FakeDetect, sink: ListSink, now: datetime, **opts: object) -> dict[str, object]:
    options = WatchOptions(source="src", store=store, **opts)  # type: ignore[arg-type]
    report = run_cycle(options, Settings(), sink, now, ingest_fn=no_ingest, detect_fn=detect)
    return report.to_dict()


def test_new_then_update_then_unchanged(store: Path) -> None:
    detect, sink = FakeDetect(), ListSink()
    detect.queue = [[finding("a", T0, 3)], [finding("a", T0, 5)], [finding("a", T0, 5)]]
    r1 = cycle(store, detect, sink, T0 + timedelta(minutes=15))
    r2 = cycle(store, detect, sink, T0 + timedelta(minutes=30))
    r3 = cycle(store, detect, sink, T0 + timedelta(minutes=45))
    assert (r1["new"], r2["updated"], r3["unchanged"]) == (1, 1, 1)
    assert [(a.action, a.event_count, a.previous_count) for a in sink.sent] == [("new", 3, 0), ("update", 5, 3)]
    assert read_raised(StoreLayout(store)) == {"a": 5}
    assert read_watermark(StoreLayout(store), "src") == T0 + timedelta(minutes=45)


def test_window_covers_gap_since_watermark_and_stretches_over_open_finding(store: Path) -> None:
    detect, sink = FakeDetect(), ListSink()
    detect.queue = [[finding("a", T0 - timedelta(hours=3), 160)]]  # 09:00 to 11:40
    cycle(store, detect, sink, T0)
    assert detect.windows[0] == (T0 - timedelta(hours=2, minutes=15), T0)
    # Down for three hours: the window reaches back to the old watermark minus look-back and late
    # margin (09:45), and further to the first event of the raised finding still open then (09:00).
    cycle(store, detect, sink, T0 + timedelta(hours=3), gap=timedelta(minutes=30))
    since, until = detect.windows[1]
    assert until == T0 + timedelta(hours=3)
    assert since == T0 - timedelta(hours=3)


def test_cap_counts_the_rest_and_raises_them_later(store: Path) -> None:
    detect, sink = FakeDetect(), ListSink()
    batch = [finding(f"f{i}", T0, 2, score=0.5 + i / 100) for i in range(5)]
    detect.queue = [batch, batch]
    r1 = cycle(store, detect, sink, T0 + timedelta(minutes=15), max_alerts=3)
    assert (r1["new"], r1["over_cap"]) == (3, 2)
    assert [a.finding_id for a in sink.sent] == ["f4", "f3", "f2"]  # best first
    r2 = cycle(store, detect, sink, T0 + timedelta(minutes=30), max_alerts=3)
    assert (r2["new"], r2["over_cap"], r2["unchanged"]) == (2, 0, 3)


def test_suppressed_findings_are_not_raised(store: Path) -> None:
    detect, sink = FakeDetect(), ListSink()
    detect.queue = [[finding("s", T0, 2, status="Suppressed"), finding("o", T0, 2)]]
    report = cycle(store, detect, sink, T0 + timedelta(minutes=15))
    assert (report["new"], report["not_raised"]) == (1, 1)
    assert [a.finding_id for a in sink.sent] == ["o"]


def test_undelivered_alerts_go_to_dead_letter_once(store: Path, tmp_path: Path) -> None:
    detect, sink = FakeDetect(), ListSink(fail=True)
    detect.queue = [[finding("a", T0, 2)]]
    dead = tmp_path / "dead.jsonl"
    report = cycle(store, detect, sink, T0 + timedelta(minutes=15), dead_letter=dead)
    assert report["dead_lettered"] == 1
    cycle(store, detect, sink, T0 + timedelta(minutes=30), dead_letter=dead)
    lines = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [line["alert"]["finding_id"] for line in lines] == ["a"]


def test_outbox_left_by_a_crash_is_delivered_first(store: Path) -> None:
    detect = FakeDetect()
    detect.queue = [[finding("a", T0, 2)]]

    class Crash(Exception):
        pass

    class CrashingSink(ListSink):
        def send(self, alerts: Sequence[Alert]) -> Delivery:
            if alerts:
                raise Crash
            return Delivery()

    with pytest.raises(Crash):
        cycle(store, detect, CrashingSink(), T0 + timedelta(minutes=15))
    # The cycle committed before delivering: the alert waits in the outbox.
    with duckdb.connect(str(StoreLayout(store).state)) as con:
        assert con.execute("SELECT count(*) FROM watch_outbox").fetchone() == (1,)
    sink = ListSink()
    report = cycle(store, detect, sink, T0 + timedelta(minutes=30))
    assert report["redelivered"] == 1
    assert [a.alert_key for a in sink.sent] == ["a:2"]
    assert report["new"] == 0


def test_once_exit_code_reports_dead_letters(store: Path) -> None:
    detect = FakeDetect(queue=[[finding("a", T0, 2)]])
    options = WatchOptions(source="src", store=store)
    code = run_watch(
        options,
        Settings(),
        ListSink(fail=True),
        clock=FixedClock(T0),
        once=True,
        ingest_fn=no_ingest,
        detect_fn=detect,
        install_signals=False,
    )
    assert code == EXIT_DEAD_LETTERED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("90", timedelta(seconds=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text, setting="--every") == expected


@pytest.mark.parametrize("text", ["", "15 minutes", "m15", "-5m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--every"):
        parse_duration(text, setting="--every")


def test_settings_section_and_flags(tmp_path: Path) -> None:
    settings = Settings(path=tmp_path / "t.toml", data={"watch": {"every": "5m", "max_alerts": 7, "late": 60}})
    opts = WatchOptions.from_settings(settings, source="s", store=tmp_path, max_alerts=None, late=timedelta(0))
    assert (opts.every, opts.max_alerts, opts.late) == (timedelta(minutes=5), 7, timedelta(0))
    with pytest.raises(ConfigError, match=r"\[watch\] max_alerts"):
        WatchOptions.from_settings(Settings(data={"watch": {"max_alerts": "x"}}), source="s", store=tmp_path)


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    """A SIGTERM while waiting for the next cycle stops the process with exit 0 and state committed."""
    source, store, clock = tmp_path / "in", tmp_path / "store", tmp_path / "clock"
    source.mkdir()
    clock.write_text("2026-03-02T12:00:00Z")
    log = tmp_path / "err.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trailsight",
                "watch",
                str(source),
                "--store",
                str(store),
                "--clock-file",
                str(clock),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        deadline = time.monotonic() + 60
        while b"watch.cycle" not in log.read_bytes() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    report = orjson.loads(log.read_bytes().splitlines()[0])
    assert report["event"] == "watch.cycle"
    assert read_watermark(StoreLayout(store), str(source)) == T0
    assert FileSink  # the file sink is exercised in test_watch_outputs


def test_late_event_that_moves_a_finding_start_supersedes_it(store: Path) -> None:
    detect, sink = FakeDetect(), ListSink()
    early = finding("b", T0, 3)
    moved = Finding(**{**early.__dict__, "id": "a", "count": 4, "event_ids": ["late", *early.event_ids]})
    detect.queue = [[early], [moved]]
    cycle(store, detect, sink, T0 + timedelta(minutes=15))
    report = cycle(store, detect, sink, T0 + timedelta(minutes=30))
    assert report["updated"] == 1
    assert [(a.finding_id, a.action, a.supersedes) for a in sink.sent] == [("b", "new", ()), ("a", "update", ("b",))]
    assert read_raised(StoreLayout(store)) == {"a": 4}
    assert read_raised(StoreLayout(store), superseded=True) == {"a": 4, "b": 3}


def _told(found: list[Finding]) -> list[Finding]:
    """The findings as detect returns them: stories built from them, members linked."""
    from trailsight.stories.correlate import build_stories
    from trailsight.stories.options import StoryOptions

    stories, members = build_stories(found, [], [], StoryOptions(), run_days=1.0)
    return [*stories, *members]


def test_a_story_is_raised_once_and_updated_as_it_grows_never_as_its_members(store: Path) -> None:
    detect, sink = FakeDetect(), ListSink()
    a, b, c = finding("a", T0, 3), finding("b", T0 + timedelta(hours=2), 2), finding("c", T0 + timedelta(hours=5), 4)
    detect.queue = [_told([a]), _told([a, b]), _told([a, b, c]), _told([a, b, c])]
    r1 = cycle(store, detect, sink, T0 + timedelta(minutes=15))
    r2 = cycle(store, detect, sink, T0 + timedelta(hours=3))
    r3 = cycle(store, detect, sink, T0 + timedelta(hours=6))
    r4 = cycle(store, detect, sink, T0 + timedelta(hours=7))
    story = next(f for f in detect.queue or _told([a, b, c]) if f.is_story)
    assert [(a.finding_id, a.action, a.event_count, a.supersedes) for a in sink.sent] == [
        ("a", "new", 3, ()),  # alone, a is a finding of its own
        (story.id, "update", 5, ("a",)),  # with b it becomes a story, which takes a's place
        (story.id, "update", 9, ()),  # c joins: the same story, updated
    ]
    assert (r2["not_raised"], r3["not_raised"], r4["unchanged"]) == (2, 3, 1)
    assert r1["new"] == 1
    assert read_raised(StoreLayout(store)) == {story.id: 9}
