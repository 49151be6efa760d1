"""The outputs registry: names, options, plugins, severity floors, and several outputs from one watch."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from alert_samples import as_alert, golden, many
from http_stub import Receiver
from trailsight.config import Settings
from trailsight.errors import ConfigError
from trailsight.finding import Finding
from trailsight.outputs import registry as reg_mod
from trailsight.outputs.aws import EventBridgeSink, SecurityHubSink, SnsSink
from trailsight.outputs.base import Alert, Delivery, Sink
from trailsight.outputs.formats import OutputFormat, RenderContext
from trailsight.outputs.jsonl import FileSink, StreamSink
from trailsight.outputs.registry import (
    Destination,
    OutputDefaults,
    SinkRequest,
    available,
    parse_output,
    parse_outputs,
    register,
    split_spec,
)
from trailsight.outputs.routing import FanOutSink, SeverityFloorSink
from trailsight.outputs.webhook import WebhookSink
from trailsight.watch import WatchOptions, run_cycle

ARN = "arn:aws:sns:eu-west-1:111122223333:alerts"


@pytest.mark.parametrize(
    ("spec", "kind", "fmt"),
    [
        ("jsonl", StreamSink, "jsonl"),
        ("-", StreamSink, "jsonl"),
        ("ocsf", StreamSink, "ocsf"),
        ("stdout?format=asff", StreamSink, "asff"),
        ("file:alerts.ocsf.jsonl?format=ocsf", FileSink, "ocsf"),
        ("webhook:https://siem.example/in?token=abc", WebhookSink, "jsonl"),
        ("slack:https://hooks.slack.com/services/T/B/x", WebhookSink, "slack"),
        ("teams:https://example.webhook.office.com/x", WebhookSink, "teams"),
        ("securityhub", SecurityHubSink, "asff"),
        ("securityhub:eu-west-1", SecurityHubSink, "asff"),
        (f"sns:{ARN}?format=ocsf", SnsSink, "ocsf"),
        ("eventbridge", EventBridgeSink, "jsonl"),
        ("eventbridge:arn:aws:events:eu-west-1:111122223333:event-bus/sec?format=ocsf", EventBridgeSink, "ocsf"),
    ],
)
def test_specs_pick_destination_and_format(spec: str, kind: type, fmt: str) -> None:
    sink: Any = parse_output(spec)
    assert isinstance(sink, kind)
    assert sink.fmt.name == fmt


def test_webhook_keeps_its_own_query_and_takes_ours() -> None:
    sink: Any = parse_output("webhook:https://siem.example/in?token=abc&retries=2&min_severity=High")
    assert isinstance(sink, SeverityFloorSink)
    assert sink.inner.url == "https://siem.example/in?token=abc"
    assert sink.inner.policy.retries == 2
    assert split_spec("file:a.csv?format=csv", available()) == ("file", "a.csv", {"format": "csv"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("kafka:topic", "unknown output 'kafka'"),
        ("file:", "needs a target"),
        ("sns:", "needs a target"),
        ("stdout:x", "takes no target"),
        ("securityhub?format=ocsf", "takes format asff"),
        ("eventbridge?format=slack", "takes format"),
        ("file:x?format=xml", "unknown format 'xml'"),
        ("file:x?colour=red", "does not take option 'colour'"),
        ("file:x?min_severity=Urgent", "min_severity 'Urgent'"),
        ("webhook:ftp://x", "must start with http"),
        ("slack:https://h?retries=many", "retries='many' is not a number"),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--output") as info:
        parse_output(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


class ShoutFormat(OutputFormat):
    """A third-party format: the title in capitals."""

    name = "shout"

    def render_finding(self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: Any = None) -> Any:
        return finding.title.upper()


class MemoryDestination(Destination):
    """A third-party destination: keeps payloads in a list."""

    name = "memory"
    target = "optional"
    kept: ClassVar[list[bytes]] = []

    def build(self, request: SinkRequest) -> Sink:
        fmt, ctx = request.fmt, request.ctx

        class MemorySink:
            name = "memory"

            def send(self, alerts: Sequence[Alert]) -> Delivery:
                MemoryDestination.kept.extend(fmt.encode(fmt.render(a, ctx)) for a in alerts)
                return Delivery(delivered=list(alerts), attempts=1)

            def close(self) -> None:
                pass

        return MemorySink()


def test_plugins_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        EntryPoint("shout", f"{__name__}:ShoutFormat", reg_mod.ENTRY_POINT_GROUP),
        EntryPoint("memory", f"{__name__}:MemoryDestination", reg_mod.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(reg_mod, "entry_points", lambda group: eps if group == reg_mod.ENTRY_POINT_GROUP else [])
    reg = available()
    assert "shout" in reg.formats
    assert "memory" in reg.destinations
    sink = parse_output("memory?format=shout", registry=reg)
    sink.send([as_alert(golden()[1])])
    assert MemoryDestination.kept == [golden()[1].title.upper().encode()]

    # a plugin may not take a built-in's name
    class Clash(Destination):
        name = "sns"

    with pytest.raises(ConfigError, match="registered twice"):
        register(reg, Clash)
    with pytest.raises(ConfigError, match="neither"):
        register(reg, object)


def test_broken_entry_point_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [EntryPoint("bad", "no_such_module_xyz:Thing", reg_mod.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(reg_mod, "entry_points", lambda group: eps)
    with pytest.raises(ConfigError, match=r"trailsight\.outputs:bad failed to load"):
        available()


def test_severity_floor_passes_only_what_reaches_it() -> None:
    buf = io.BytesIO()
    floor = SeverityFloorSink(StreamSink(buf), "High")
    alerts = [*many(2, severity_label="Medium"), *many(1, severity_label="High")]
    result = floor.send(alerts)
    assert len(result.delivered) == 3
    assert not result.failed
    assert len(buf.getvalue().splitlines()) == 1


def test_fan_out_per_sink(tmp_path: Path) -> None:
    rec = Receiver(fail_first=100, status=500)
    try:
        out = tmp_path / "alerts.ocsf.jsonl"
        sink = parse_outputs(
            [f"slack:{rec.url}?min_severity=High", f"file:{out}?format=ocsf"],
            defaults=OutputDefaults(retries=1, backoff_s=0.0),
        )
        assert isinstance(sink, FanOutSink)
        alerts = [*many(2, severity_label="Medium"), *many(1, severity_label="High")]
        alerts[2] = Alert(**{**alerts[2].__dict__, "finding_id": "ts-high"})
        result = sink.send(alerts)
        assert [a.finding_id for a, _ in result.failed] == ["ts-high"]
        assert result.failed[0][1].startswith("slack: not tried") or result.failed[0][1].startswith("slack: HTTP 500")
        assert len(out.read_bytes().splitlines()) == 3
        assert rec.attempts == 2  # one alert reached Slack's floor: tried, retried once
    finally:
        rec.close()


def test_watch_cycle_feeds_every_output_and_dead_letters_per_sink(tmp_path: Path) -> None:
    """Slack takes High only and is down; the OCSF file takes everything; the dead letters name Slack."""
    store = tmp_path / "store"
    day = store / "lake" / "account_id=123837392027" / "event_date=2023-07-10"
    day.mkdir(parents=True)
    (day / "b.parquet").write_bytes(b"")
    high = golden()[1].__class__(**{**golden()[1].__dict__, "severity_label": "High"})
    findings = [golden()[0], high]
    rec = Receiver(fail_first=100, status=503)
    out = tmp_path / "alerts.ocsf.jsonl"
    try:
        sink = parse_outputs(
            [f"slack:{rec.url}?min_severity=High", f"file:{out}?format=ocsf"],
            defaults=OutputDefaults(retries=1, backoff_s=0.0),
        )
        options = WatchOptions(source="src", store=store)
        report = run_cycle(
            options,
            Settings(),
            sink,
            datetime(2023, 7, 10, 12, 40, tzinfo=UTC),
            ingest_fn=lambda source, layout, settings: (0, 0, 0),
            detect_fn=lambda layout, since, until, settings, detectors: findings,
        )
    finally:
        rec.close()
    assert (report.new, report.delivered, report.dead_lettered) == (2, 1, 1)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [x["finding_info"]["uid"] for x in lines] == [f.id for f in findings]
    dead = [orjson.loads(line) for line in (store / "watch-dead-letter.jsonl").read_bytes().splitlines()]
    assert [(d["sink"], d["alert"]["finding_id"]) for d in dead] == [("slack", high.id)]
    assert rec.attempts == 2


@pytest.mark.parametrize("fmt", ["ocsf", "csv", "slack"])
def test_file_sink_reconciles_any_format(tmp_path: Path, fmt: str) -> None:
    """After a kill mid-send, the file sink recognises the alerts it wrote whole in any format."""
    path = tmp_path / f"alerts.{fmt}"
    sink: Any = parse_output(f"file:{path}?format={fmt}")
    first, second, third = many(3)
    sink.send([first])
    mark = sink.prepare()
    sink.send([second])
    with path.open("ab") as fh:  # the kill: half of the third alert's line
        fh.write(sink.fmt.line(sink.fmt.render(third, sink.ctx))[:40])
    assert sink.reconcile([second, third], mark) == [second]
    sink.send([third])
    text = path.read_bytes()
    for alert in (first, second, third):
        assert text.count(sink.fmt.line(sink.fmt.render(alert, sink.ctx))) == 1
