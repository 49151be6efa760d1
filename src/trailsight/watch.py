"""``trailsight watch``: ingest what is new, score the recent window, raise what was not raised.

One *cycle* does, in order:

1. **Deliver leftovers** — alerts a killed run committed but did not finish sending
   (the ``watch_outbox`` table) go out first.
2. **Ingest** what is new in the source: a local folder; an ``s3://`` prefix (an organisation
   trail is listed in full once, then only its recent date folders:
   :mod:`trailsight.ingest.trail_prefixes`); or an ``sqs://`` queue of S3 notifications, drained
   (:mod:`trailsight.ingest.sqs`). The ingest manifest remembers every file already read, so
   this is cheap and idempotent.
3. **Score the look-back window** ``[since, now)`` with :func:`trailsight.pipeline.detect`,
   where ``since = min(now, watermark) - lookback - late``. ``watermark`` is the end of
   the last committed cycle, so a restart after any downtime covers the gap; ``late``
   (default 15 min) re-reads the stretch that CloudTrail files delivered late can still
   fill in. The window is stretched further back to the first event of any finding
   already raised that is still open (its last event within ``gap`` of the window
   start), so a growing finding keeps its first event, hence its stable id.
4. **Decide what to raise.** A finding id never raised before is ``new``; one raised with
   fewer events is an ``update`` (the open finding grew — the same id, never a
   duplicate); anything else is already known. A late-delivered file can add an earlier
   event to an open finding, which moves its first event and so its id: a new id that
   shares events with a raised finding is an ``update`` that ``supersedes`` the old id
   (the old one is marked superseded in ``watch_raised``); an attack story that forms around
   findings raised alone supersedes them the same way, and a story's members are raised only
   through their story. Suppressed findings and findings an
   analyst dismissed are not raised. At most ``max_alerts`` are raised per cycle
   (highest score first); the rest are counted as ``over_cap`` and stay eligible for
   the next cycle.
5. **Commit** in one state-database transaction: the ``watch_raised`` rows
   (id, event count, event ids, superseded_by), the alerts into ``watch_outbox``, the new watermark in
   ``watch_state``, and the cycle report in ``watch_runs``.
6. **Deliver** the outbox to the sink (each sink of a fan-out in turn); what a sink cannot
   deliver goes to the dead-letter file under its name. Delivered and dead-lettered alerts
   leave the outbox.

A kill at any point therefore loses nothing: before step 5 nothing of the cycle is
kept and the next cycle redoes it (ingest and detect are idempotent); after step 5
the outbox still holds the alerts. Into a file (``file:PATH``) delivery is exactly once: the
file's size is committed before each send, and a restart keeps the alerts the file holds whole
and cuts off a half-written line (:func:`deliver_pending`). To stdout and webhooks it is at least
once (an alert sent just before a kill is sent again); alerts carry ``alert_key`` for consumers to
drop repeats.

Profiles are not stored separately: the feature engine recomputes them from the lake
for every window (daily aggregates over the forget window), so they are always up to
date and age out by themselves.

Signals: the first SIGTERM or SIGINT lets the running cycle finish and commit, then
stops (exit 0); a second one abandons the cycle at once (nothing of it is committed;
exit 130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import duckdb
import orjson

from trailsight.config import Settings
from trailsight.errors import ConfigError, TrailsightError
from trailsight.finding import Finding
from trailsight.outputs.base import Alert, DeadLetterFile, Delivery, Sink
from trailsight.store.findings import connect_state
from trailsight.store.layout import StoreLayout
from trailsight.store.state import table_exists, transaction

#: Exit codes of ``trailsight watch``.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_QUARANTINED = 3
EXIT_DEAD_LETTERED = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

DEFAULT_EVERY = timedelta(minutes=15)
DEFAULT_LOOKBACK = timedelta(hours=2)
DEFAULT_LATE = timedelta(minutes=15)
DEFAULT_GAP = timedelta(minutes=30)
DEFAULT_MAX_ALERTS = 100
DEFAULT_MAX_STRETCH = timedelta(days=1)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_DDL = (
    """CREATE TABLE IF NOT EXISTS watch_state(
        source VARCHAR PRIMARY KEY,
        watermark TIMESTAMPTZ,
        runs BIGINT,
        last_run_id VARCHAR,
        updated_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS watch_raised(
        id VARCHAR PRIMARY KEY,
        event_count INTEGER,
        first_seen TIMESTAMPTZ,
        last_seen TIMESTAMPTZ,
        first_raised_at TIMESTAMPTZ,
        last_raised_at TIMESTAMPTZ,
        raises INTEGER,
        event_ids VARCHAR[],
        superseded_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS watch_outbox(
        alert_key VARCHAR PRIMARY KEY,
        seq BIGINT,
        payload JSON,
        created_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS watch_delivery(
        sink VARCHAR PRIMARY KEY,
        mark VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS watch_runs(
        run_id VARCHAR PRIMARY KEY,
        source VARCHAR,
        now TIMESTAMPTZ,
        since TIMESTAMPTZ,
        "until" TIMESTAMPTZ,
        report JSON)""",
)


def parse_duration(text: str, *, setting: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` (or plain seconds) into a timedelta."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return timedelta(seconds=float(value))
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ConfigError(f"{setting} {text!r}: not a duration (use e.g. 90s, 15m, 2h, 1d)")
    return timedelta(seconds=total)


def _duration_setting(section: Mapping[str, Any], key: str, default: timedelta, path: Path | None) -> timedelta:
    raw = section.get(key)
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return timedelta(seconds=float(raw))
    if isinstance(raw, str):
        return parse_duration(raw, setting=f"{path}: [watch] {key}")
    raise ConfigError(f"{path}: [watch] {key} must be a duration such as '15m'")


@dataclass(frozen=True, kw_only=True)
class WatchOptions:
    """What one ``watch`` process watches, where it keeps state, and its timing."""

    source: str
    store: Path
    every: timedelta = DEFAULT_EVERY
    lookback: timedelta = DEFAULT_LOOKBACK
    late: timedelta = DEFAULT_LATE
    gap: timedelta = DEFAULT_GAP
    max_alerts: int = DEFAULT_MAX_ALERTS
    max_stretch: timedelta = DEFAULT_MAX_STRETCH
    dead_letter: Path | None = None
    detectors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("every", "lookback", "late", "gap", "max_stretch"):
            value: timedelta = getattr(self, name)
            if value < timedelta(0) or (name == "every" and value <= timedelta(0)):
                raise ConfigError(f"--{name.replace('_', '-')} {value}: must be positive")
        if self.max_alerts < 0:
            raise ConfigError(f"--max-alerts {self.max_alerts}: must be 0 or more")

    @property
    def dead_letter_path(self) -> Path:
        """The dead-letter file (default ``S/watch-dead-letter.jsonl``)."""
        return self.dead_letter or self.store / "watch-dead-letter.jsonl"

    @classmethod
    def from_settings(cls, settings: Settings, *, source: str, store: Path, **overrides: Any) -> WatchOptions:
        """Build options from the ``[watch]`` section, then ``overrides`` (CLI flags; None = unset)."""
        section = settings.section("watch")
        values: dict[str, Any] = {
            "every": _duration_setting(section, "every", DEFAULT_EVERY, settings.path),
            "lookback": _duration_setting(section, "lookback", DEFAULT_LOOKBACK, settings.path),
            "late": _duration_setting(section, "late", DEFAULT_LATE, settings.path),
            "gap": _duration_setting(section, "gap", DEFAULT_GAP, settings.path),
            "max_stretch": _duration_setting(section, "max_stretch", DEFAULT_MAX_STRETCH, settings.path),
        }
        max_alerts = section.get("max_alerts", DEFAULT_MAX_ALERTS)
        if not isinstance(max_alerts, int) or isinstance(max_alerts, bool):
            raise ConfigError(f"{settings.path}: [watch] max_alerts must be an integer")
        values["max_alerts"] = max_alerts
        if section.get("dead_letter"):
            values["dead_letter"] = Path(str(section["dead_letter"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(source=source, store=store, **values)


# --------------------------------------------------------------------------- clocks


class Clock(Protocol):
    """Where ``watch`` gets the time from, and how it waits for the next cycle."""

    def now(self) -> datetime:
        """The current time (UTC-aware)."""
        ...

    def wait_until(self, when: datetime, stop: threading.Event) -> bool:
        """Block until ``when``; return False at once if ``stop`` is set first."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def wait_until(self, when: datetime, stop: threading.Event) -> bool:
        """Sleep until ``when`` (in slices, so a changed system clock is noticed)."""
        while not stop.is_set():
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return True
            stop.wait(min(left, 30.0))
        return False


class FileClock:
    """A clock read from a file holding one ISO-8601 timestamp (for tests and replays).

    Whoever writes the file decides what time it is, so an hour of simulated time can
    run in seconds. ``wait_until`` polls the file.
    """

    def __init__(self, path: Path, *, poll_s: float = 0.05) -> None:
        self.path = path
        self.poll_s = poll_s

    def now(self) -> datetime:
        """The time written in the file."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the clock file: {exc.strerror}") from None
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{self.path}: clock file must hold an ISO-8601 time, not {text[:40]!r}") from None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def wait_until(self, when: datetime, stop: threading.Event) -> bool:
        """Poll the file until it says ``when`` or later."""
        while not stop.is_set():
            try:
                if self.now() >= when:
                    return True
            except ConfigError:
                pass  # being rewritten; read again
            stop.wait(self.poll_s)
        return False


class FixedClock:
    """A clock stopped at one instant (``--now`` with ``--once``)."""

    def __init__(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        """The fixed instant."""
        return self.at

    def wait_until(self, when: datetime, stop: threading.Event) -> bool:
        """Never reached: a fixed clock is only used for one cycle."""
        return when <= self.at and not stop.is_set()


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True, kw_only=True)
class CycleReport:
    """What one cycle did (printed as one JSON line on stderr and kept in ``watch_runs``)."""

    run_id: str
    source: str
    now: datetime
    since: datetime
    until: datetime
    files_ingested: int = 0
    events_ingested: int = 0
    quarantined: int = 0
    findings_in_window: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_raised: int = 0  # suppressed by a rule or dismissed by an analyst
    over_cap: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    redelivered: int = 0  # leftovers of an earlier, interrupted cycle
    raised_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    intake: dict[str, Any] = field(default_factory=dict)  # source-specific counts (sqs:// drains, s3:// listing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        for key in ("now", "since", "until"):
            data[key] = _iso(data[key])
        data["event"] = "watch.cycle"
        return data


@dataclass(frozen=True, kw_only=True)
class IngestCounts:
    """What a cycle's ingest did, with the source's own counts (``intake`` in the cycle report)."""

    files: int
    events: int
    quarantined: int
    detail: dict[str, Any] = field(default_factory=dict)


class IngestFn(Protocol):
    """``ingest(source, layout, settings) -> (files, events, quarantined)`` or :class:`IngestCounts`."""

    def __call__(self, source: str, layout: StoreLayout, settings: Settings) -> tuple[int, int, int] | IngestCounts:
        """Ingest what is new in ``source``."""
        ...


class DetectFn(Protocol):
    """``detect(layout, since, until, settings, detectors) -> findings``."""

    def __call__(
        self,
        layout: StoreLayout,
        since: datetime,
        until: datetime,
        settings: Settings,
        detectors: Sequence[str] | None,
    ) -> list[Finding]:
        """Score ``[since, until)`` and return its findings."""
        ...


def default_ingest(source: str, layout: StoreLayout, settings: Settings) -> tuple[int, int, int] | IngestCounts:
    """Ingest with :func:`trailsight.ingest.ingest` (an ``sqs://`` source: drain the queue once)."""
    from trailsight.ingest import ingest

    if source.startswith("sqs://"):
        from trailsight.ingest.sqs import drain_queue

        drained = drain_queue(source, layout, settings)
        return IngestCounts(
            files=drained.files, events=drained.stored, quarantined=drained.quarantined, detail=drained.to_dict()
        )

    if source.startswith("s3://"):
        return _ingest_s3(source, layout, settings)
    report: Any = ingest([source], layout.root, settings)
    for path, why in getattr(report, "skipped_paths", ()):  # one JSON line each, like the cycle report
        sys.stderr.write(orjson.dumps({"event": "watch.skipped", "path": path, "reason": why}).decode() + "\n")
    sys.stderr.flush()
    return (
        int(_first_attr(report, ("files_ingested", "files", "files_read"), 0)),
        int(_first_attr(report, ("events_ingested", "events", "events_written", "rows"), 0)),
        int(_first_attr(report, ("quarantined", "records_quarantined"), 0)),
    )


def default_detect(
    layout: StoreLayout, since: datetime, until: datetime, settings: Settings, detectors: Sequence[str] | None
) -> list[Finding]:
    """Score the window with :func:`trailsight.pipeline.detect` (nothing to score: no findings)."""
    from trailsight.pipeline import detect

    if not _has_events(layout, since, until):
        return []

    return list(detect(layout.root, since, until, settings, detectors=list(detectors) if detectors else None))


def _ingest_s3(source: str, layout: StoreLayout, settings: Settings) -> IngestCounts:
    """An ``s3://`` source: the backfill once, then only the recent date folders of each account and region."""
    from trailsight.ingest import ingest
    from trailsight.ingest.sources import make_s3_client
    from trailsight.ingest.trail_prefixes import RecentTrailLister, now_utc

    layout.root.mkdir(parents=True, exist_ok=True)
    sources, listing = RecentTrailLister(source, layout.root, make_s3_client()).plan(now_utc())
    if not sources:
        return IngestCounts(files=0, events=0, quarantined=0, detail=listing.to_dict())
    summary = ingest([], layout.root, settings, objects=sources)
    return IngestCounts(
        files=summary.files, events=summary.new, quarantined=summary.quarantined, detail=listing.to_dict()
    )


def _first_attr(obj: Any, names: Sequence[str], default: Any) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if isinstance(value, int | float):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str):
            return len(value)
    return default


# --------------------------------------------------------------------------- state


@contextmanager
def _state(layout: StoreLayout) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect_state(layout, read_only=False) as con:
        for ddl in _DDL:
            con.execute(ddl)
        yield con


def read_watermark(layout: StoreLayout, source: str) -> datetime | None:
    """The end of the last committed cycle for ``source``, or None before the first."""
    with _state(layout) as con:
        row = con.execute("SELECT epoch_us(watermark) FROM watch_state WHERE source = ?", [source]).fetchone()
    return _from_us(row[0]) if row and row[0] is not None else None


def read_raised(layout: StoreLayout, *, superseded: bool = False) -> dict[str, int]:
    """Finding ids raised so far in this store (not superseded ones unless asked), with their event count."""
    where = "" if superseded else " WHERE superseded_by IS NULL"
    with _state(layout) as con:
        rows = con.execute("SELECT id, event_count FROM watch_raised" + where).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def _window(con: duckdb.DuckDBPyConnection, options: WatchOptions, now: datetime) -> tuple[datetime, datetime]:
    row = con.execute("SELECT epoch_us(watermark) FROM watch_state WHERE source = ?", [options.source]).fetchone()
    watermark = _from_us(row[0]) if row and row[0] is not None else None
    anchor = min(now, watermark) if watermark is not None else now
    since = anchor - options.lookback - options.late
    floor = since - options.max_stretch
    # Stretch back to the start of raised findings that are still open at the window start.
    for _ in range(20):
        found = con.execute(
            "SELECT epoch_us(min(first_seen)) FROM watch_raised"
            " WHERE superseded_by IS NULL AND last_seen >= ? AND first_seen < ? AND first_seen >= ?",
            [since - options.gap, since, floor],
        ).fetchone()
        if not found or found[0] is None:
            break
        since = _from_us(found[0])
    return since, now


def _pending(con: duckdb.DuckDBPyConnection) -> list[Alert]:
    rows = con.execute("SELECT payload FROM watch_outbox ORDER BY seq, alert_key").fetchall()
    return [Alert.from_dict(orjson.loads(r[0])) for r in rows]


# --------------------------------------------------------------------------- one cycle


class CycleAbandonedError(TrailsightError):
    """A second stop signal arrived: the cycle was abandoned before it committed."""


@dataclass
class _Stop:
    """Stop requests: the first finishes the cycle, the second abandons it."""

    event: threading.Event = field(default_factory=threading.Event)
    signals: int = 0
    signum: int = 0

    def request(self, signum: int) -> None:
        self.signals += 1
        self.signum = signum
        self.event.set()
        if self.signals >= 2:
            raise CycleAbandonedError(f"abandoned the running cycle on a second {signal.Signals(signum).name}")


def deliver_pending(layout: StoreLayout, sink: Sink, dead_letter: DeadLetterFile, now: datetime) -> tuple[int, int]:
    """Send what the outbox holds; dead-letter failures; return (delivered, dead-lettered).

    With several outputs (a :class:`~trailsight.outputs.routing.FanOutSink`) each sink gets
    every alert and its failures are dead-lettered under its own name; an alert counts as
    delivered when every sink took it.

    A sink that can tell what an interrupted send wrote (``prepare`` / ``reconcile``, the file
    sink) gets exactly-once delivery: the mark ``prepare`` returns is committed to
    ``watch_delivery`` before the send and dropped with the delivered alerts after it; a mark
    still there means the last send was interrupted, and ``reconcile`` says which alerts it wrote.
    """
    with _state(layout) as con:
        alerts = _pending(con)
        marks = {str(r[0]): str(r[1]) for r in con.execute("SELECT sink, mark FROM watch_delivery").fetchall()}
    if not alerts:
        return 0, 0
    targets: list[Sink] = list(getattr(sink, "sinks", None) or [sink])
    settled = {a.alert_key for a in alerts}
    bad: set[str] = set()
    for target in targets:
        done, failed = _deliver_to(layout, target, alerts, marks.get(target.name), dead_letter, now)
        bad |= failed
        settled &= done | failed
    with _state(layout) as con, transaction(con):
        con.executemany("DELETE FROM watch_outbox WHERE alert_key = ?", [[k] for k in sorted(settled)])
        con.executemany("DELETE FROM watch_delivery WHERE sink = ?", [[t.name] for t in targets])
    return len(settled - bad), len(settled & bad)


def _deliver_to(
    layout: StoreLayout,
    target: Sink,
    alerts: Sequence[Alert],
    mark: str | None,
    dead_letter: DeadLetterFile,
    now: datetime,
) -> tuple[set[str], set[str]]:
    """Deliver ``alerts`` to one sink (reconciling an interrupted send); return (delivered, failed) keys."""
    prepare = getattr(target, "prepare", None)
    reconcile = getattr(target, "reconcile", None)
    already: list[Alert] = []
    todo = list(alerts)
    if mark is not None and reconcile is not None:
        already = list(reconcile(todo, mark))
        written = {a.alert_key for a in already}
        todo = [a for a in todo if a.alert_key not in written]
    if prepare is not None and todo:
        with _state(layout) as con:
            con.execute("INSERT OR REPLACE INTO watch_delivery VALUES (?, ?)", [target.name, str(prepare())])
    result = target.send(todo) if todo else Delivery()
    dead_letter.write(result.failed, sink=target.name, now=now)
    return {a.alert_key for a in [*already, *result.delivered]}, {a.alert_key for a, _ in result.failed}


def _has_events(layout: StoreLayout, since: datetime, until: datetime) -> bool:
    """Whether the lake has a partition in the window's days (an empty window raises nothing)."""
    from trailsight.features.source import lake_files_between

    if since >= until or not layout.lake.is_dir():
        return False
    return bool(lake_files_between(layout, since.date(), (until - timedelta(microseconds=1)).date()))


def _known(
    layout: StoreLayout, ids: Sequence[str], open_since: datetime
) -> tuple[dict[str, int], dict[str, str], dict[str, tuple[str, int]]]:
    """For these finding ids: the event count each was raised at and the analyst's status; and
    for every event of a raised finding still open after ``open_since``: (finding id, count)."""
    if not ids:
        return {}, {}, {}
    with _state(layout) as con:
        owner: dict[str, tuple[str, int]] = {}
        for fid, count, events in con.execute(
            "SELECT id, event_count, event_ids FROM watch_raised WHERE superseded_by IS NULL AND last_seen >= ?",
            [open_since],
        ).fetchall():
            for event_id in events or ():
                owner[str(event_id)] = (str(fid), int(count))
        raised = {
            str(r[0]): int(r[1])
            for r in con.execute(
                "SELECT id, event_count FROM watch_raised WHERE list_contains(?, id)", [list(ids)]
            ).fetchall()
        }
        status: dict[str, str] = {}
        if table_exists(con, "findings"):
            rows = con.execute("SELECT id, status FROM findings WHERE list_contains(?, id)", [list(ids)]).fetchall()
            status = {str(r[0]): str(r[1]) for r in rows}
    return raised, status, owner


def run_cycle(
    options: WatchOptions,
    settings: Settings,
    sink: Sink,
    now: datetime,
    *,
    ingest_fn: IngestFn = default_ingest,
    detect_fn: DetectFn = default_detect,
) -> CycleReport:
    """Run one watch cycle at time ``now`` (see the module docstring) and return its report."""
    started = time.monotonic()
    now = now.astimezone(UTC)
    layout = StoreLayout(options.store)
    dead_letter = DeadLetterFile(options.dead_letter_path)
    run_id = f"watch-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"

    redelivered, re_dead = deliver_pending(layout, sink, dead_letter, now)
    got = ingest_fn(options.source, layout, settings)
    if isinstance(got, IngestCounts):
        files, events, quarantined, intake = got.files, got.events, got.quarantined, got.detail
    else:
        (files, events, quarantined), intake = got, {}

    with _state(layout) as con:
        since, until = _window(con, options, now)
    findings = detect_fn(layout, since, until, settings, options.detectors) if since < until else []
    raised, status, owner = _known(layout, [f.id for f in findings], since - options.gap)

    candidates: list[tuple[Finding, str, int, tuple[str, ...]]] = []
    unchanged = not_raised = 0
    for finding in findings:
        if finding.status == "Suppressed" or status.get(finding.id) in ("Dismissed", "Suppressed"):
            not_raised += 1
            continue
        if finding.story_id is not None:
            # A story's member is raised through its story (one alert that grows), never on its own.
            not_raised += 1
            continue
        before = raised.get(finding.id)
        if before is None:
            # Late events can move a finding's first event, hence its id: the raised findings
            # sharing events with it are superseded by it (an update, not a second finding).
            # A story that first forms supersedes the findings raised before it that it now holds.
            # (A finding's own events: its first ``count``; the rest are its session's other calls.)
            old = {owner[e] for e in finding.event_ids[: finding.count] if e in owner and owner[e][0] != finding.id}
            if old:
                gone = tuple(sorted(fid for fid, _ in old))
                candidates.append((finding, "update", max(count for _, count in old), gone))
            else:
                candidates.append((finding, "new", 0, ()))
        elif finding.count > before:
            candidates.append((finding, "update", before, ()))
        else:
            unchanged += 1
    candidates.sort(key=lambda c: (-c[0].score, -c[0].risk_score, c[0].first_seen, c[0].id))
    chosen = candidates[: options.max_alerts]
    over_cap = len(candidates) - len(chosen)
    alerts = [
        Alert(
            finding_id=f.id,
            action=action,
            event_count=f.count,
            previous_count=before,
            run_id=run_id,
            raised_at=now,
            finding=f.to_dict(),
            supersedes=gone,
        )
        for f, action, before, gone in chosen
    ]

    report = CycleReport(
        run_id=run_id,
        source=options.source,
        now=now,
        since=since,
        until=until,
        files_ingested=files,
        events_ingested=events,
        quarantined=quarantined,
        findings_in_window=len(findings),
        new=sum(1 for a in alerts if a.action == "new"),
        updated=sum(1 for a in alerts if a.action == "update"),
        unchanged=unchanged,
        not_raised=not_raised,
        over_cap=over_cap,
        redelivered=redelivered,
        raised_ids=[a.finding_id for a in alerts],
        intake=intake,
    )
    _commit(layout, options, report, alerts, [c[0] for c in chosen], now)
    delivered, dead = deliver_pending(layout, sink, dead_letter, now)
    elapsed = time.monotonic() - started
    return CycleReport(
        **{
            **asdict(report),
            "delivered": delivered,
            "dead_lettered": dead + re_dead,
            "seconds": round(elapsed, 3),
        }
    )


def _commit(
    layout: StoreLayout,
    options: WatchOptions,
    report: CycleReport,
    alerts: Sequence[Alert],
    findings: Sequence[Finding],
    now: datetime,
) -> None:
    """Record the cycle atomically: raised ids, outbox, watermark, run report."""
    with _state(layout) as con, transaction(con):
        seq_row = con.execute("SELECT coalesce(max(seq), 0) FROM watch_outbox").fetchone()
        seq = int(seq_row[0]) if seq_row else 0
        for index, (alert, finding) in enumerate(zip(alerts, findings, strict=True)):
            con.execute(
                """INSERT INTO watch_raised VALUES (?, ?, ?, ?, ?, ?, 1, ?, NULL)
                       ON CONFLICT (id) DO UPDATE SET event_count = excluded.event_count,
                         first_seen = least(watch_raised.first_seen, excluded.first_seen),
                         last_seen = greatest(watch_raised.last_seen, excluded.last_seen),
                         last_raised_at = excluded.last_raised_at, raises = watch_raised.raises + 1,
                         event_ids = excluded.event_ids, superseded_by = NULL""",
                [
                    finding.id,
                    finding.count,
                    finding.first_seen,
                    finding.last_seen,
                    now,
                    now,
                    finding.event_ids[: finding.count],
                ],
            )
            if alert.supersedes:
                con.execute(
                    "UPDATE watch_raised SET superseded_by = ? WHERE list_contains(?, id)",
                    [finding.id, list(alert.supersedes)],
                )
            con.execute(
                "INSERT OR REPLACE INTO watch_outbox VALUES (?, ?, ?, ?)",
                [alert.alert_key, seq + index + 1, alert.to_json().decode(), now],
            )
        con.execute(
            """INSERT INTO watch_state VALUES (?, ?, 1, ?, ?)
                   ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark,
                     runs = watch_state.runs + 1, last_run_id = excluded.last_run_id,
                     updated_at = excluded.updated_at""",
            [options.source, report.until, report.run_id, now],
        )
        con.execute(
            "INSERT INTO watch_runs VALUES (?, ?, ?, ?, ?, ?)",
            [
                report.run_id,
                options.source,
                report.now,
                report.since,
                report.until,
                orjson.dumps(report.to_dict()).decode(),
            ],
        )


# --------------------------------------------------------------------------- the loop


def run_watch(
    options: WatchOptions,
    settings: Settings,
    sink: Sink,
    *,
    clock: Clock | None = None,
    once: bool = False,
    on_report: Callable[[CycleReport], None] | None = None,
    on_error: Callable[[TrailsightError], None] | None = None,
    ingest_fn: IngestFn = default_ingest,
    detect_fn: DetectFn = default_detect,
    install_signals: bool = True,
) -> int:
    """Run cycles every ``options.every`` until stopped (or one with ``once``); return the exit code.

    In the loop a cycle that fails with a :class:`TrailsightError` (a source that cannot be
    listed, a locked store) is reported through ``on_error`` and retried at the next tick;
    with ``once`` it is raised.
    """
    clock = clock or SystemClock()
    stop = _Stop()
    previous: dict[signal.Signals, Any] = {}
    if install_signals and threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: FrameType | None) -> None:
            stop.request(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
    code = EXIT_OK
    try:
        next_at = clock.now()
        while True:
            now = clock.now()
            try:
                report = run_cycle(options, settings, sink, now, ingest_fn=ingest_fn, detect_fn=detect_fn)
            except CycleAbandonedError:
                raise
            except TrailsightError as exc:
                if once:
                    raise
                if on_error:
                    on_error(exc)
            else:
                if on_report:
                    on_report(report)
                if once:
                    if report.dead_lettered:
                        code = EXIT_DEAD_LETTERED
                    elif report.quarantined:
                        code = EXIT_QUARANTINED
            if once or stop.event.is_set():
                return code
            while next_at <= now:
                next_at += options.every
            if not clock.wait_until(next_at, stop.event):
                return code
    except CycleAbandonedError as exc:
        if on_error:
            on_error(exc)
        return EXIT_SIGTERM if stop.signum == signal.SIGTERM else EXIT_SIGINT
    finally:
        sink.close()
        for number, old in previous.items():
            signal.signal(number, old)


def print_report(report: CycleReport) -> None:
    """Write a cycle report as one JSON line on standard error."""
    sys.stderr.write(orjson.dumps(report.to_dict()).decode() + "\n")
    sys.stderr.flush()


def _from_us(value: int) -> datetime:
    """A DuckDB ``epoch_us`` value as an aware UTC datetime (no pytz needed)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


__all__ = [
    "EXIT_DEAD_LETTERED",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_QUARANTINED",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "Clock",
    "CycleAbandonedError",
    "CycleReport",
    "FileClock",
    "FixedClock",
    "IngestCounts",
    "SystemClock",
    "WatchOptions",
    "default_detect",
    "default_ingest",
    "deliver_pending",
    "parse_duration",
    "print_report",
    "read_raised",
    "read_watermark",
    "run_cycle",
    "run_watch",
]
