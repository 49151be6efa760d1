"""``trailsight watch``: ingest, score and alert every N minutes (see :mod:`trailsight.watch`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from trailsight.config import load_settings
from trailsight.errors import ConfigError, TrailsightError
from trailsight.outputs.registry import OutputDefaults, parse_outputs
from trailsight.watch import (
    EXIT_DEAD_LETTERED,
    EXIT_OK,
    EXIT_QUARANTINED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    Clock,
    CycleReport,
    FileClock,
    FixedClock,
    SystemClock,
    WatchOptions,
    parse_duration,
    print_report,
    run_watch,
)

HELP = (
    "Every --every, ingest what is new in SOURCE (a folder, an s3:// prefix or an sqs:// queue of S3 "
    "notifications), score the last "
    "--lookback (+ --late) of events and raise the findings not raised before.\n\n"
    "Alerts (one JSON object per new or grown finding) go to --output; one JSON line per cycle "
    "goes to stderr.\n\n"
    f"Exit codes: {EXIT_OK} stopped cleanly (SIGTERM/SIGINT) or --once succeeded; 1 error; 2 bad usage; "
    f"{EXIT_QUARANTINED} (--once) records were quarantined; {EXIT_DEAD_LETTERED} (--once) alerts went to the "
    f"dead-letter file; {EXIT_SIGINT}/{EXIT_SIGTERM} a second SIGINT/SIGTERM abandoned the running cycle."
)


def _duration(value: str | None, flag: str) -> object:
    return None if value is None else parse_duration(value, setting=flag)


def _parse_now(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now {value!r}: expected an ISO-8601 time such as 2026-01-31T12:00:00Z") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--webhook-header {value!r}: expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def watch_command(
    source: Annotated[
        str, typer.Argument(help="Folder of CloudTrail files, an s3://bucket/prefix/, or sqs://QUEUE_URL.")
    ],
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb).")],
    every: Annotated[str | None, typer.Option("--every", help="Time between cycles (default 15m).")] = None,
    lookback: Annotated[str | None, typer.Option("--lookback", help="Window scored each cycle (default 2h).")] = None,
    late: Annotated[str | None, typer.Option("--late", help="Extra look-back for late files (default 15m).")] = None,
    gap: Annotated[str | None, typer.Option("--gap", help="Gap that ends a finding (default 30m).")] = None,
    max_alerts: Annotated[int | None, typer.Option("--max-alerts", help="Alerts per cycle (default 100).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit (for cron).")] = False,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            "-o",
            help="Repeatable. jsonl | file:PATH | webhook:URL | slack:URL | teams:URL | securityhub[:REGION] | "
            "sns:TOPIC_ARN | eventbridge[:BUS], each with ?format=...&min_severity=... (see docs/watch.md).",
        ),
    ] = None,
    ui_url: Annotated[
        str | None, typer.Option("--ui-url", help="Base URL of 'trailsight serve': Slack/Teams link each finding.")
    ] = None,
    min_severity: Annotated[
        str | None, typer.Option("--min-severity", help="Default severity floor of every output (Low|Medium|High).")
    ] = None,
    dead_letter: Annotated[
        Path | None,
        typer.Option("--dead-letter", help="Where undeliverable alerts go (default STORE/watch-dead-letter.jsonl)."),
    ] = None,
    webhook_retries: Annotated[
        int, typer.Option("--webhook-retries", help="Retries after the first try (every network output).")
    ] = 5,
    webhook_backoff: Annotated[
        float, typer.Option("--webhook-backoff", help="First retry delay in seconds (doubles each retry).")
    ] = 1.0,
    webhook_timeout: Annotated[float, typer.Option("--webhook-timeout", help="Seconds to wait per try.")] = 10.0,
    webhook_header: Annotated[
        list[str] | None,
        typer.Option("--webhook-header", help="Extra header 'Name: value' (repeatable), e.g. Authorization."),
    ] = None,
    detectors: Annotated[str | None, typer.Option("--detectors", help="Detectors, comma-separated.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings file (default ./trailsight.toml).")] = None,
    now: Annotated[str | None, typer.Option("--now", help="With --once: score as if it were this UTC time.")] = None,
    heartbeat: Annotated[
        Path | None,
        typer.Option("--heartbeat", help="Touch this file after every completed cycle (for container health checks)."),
    ] = None,
    clock_file: Annotated[
        Path | None, typer.Option("--clock-file", hidden=True, help="Read the current time from this file (tests).")
    ] = None,
) -> None:
    """Watch a CloudTrail source continuously."""
    settings = load_settings(config)
    options = WatchOptions.from_settings(
        settings,
        source=source,
        store=store,
        every=_duration(every, "--every"),
        lookback=_duration(lookback, "--lookback"),
        late=_duration(late, "--late"),
        gap=_duration(gap, "--gap"),
        max_alerts=max_alerts,
        dead_letter=dead_letter,
        detectors=tuple(d.strip() for d in detectors.split(",") if d.strip()) if detectors else None,
    )
    if now is not None and not once:
        raise ConfigError("--now: only allowed with --once")
    clock: Clock
    if now is not None:
        clock = FixedClock(_parse_now(now))
    elif clock_file is not None:
        clock = FileClock(clock_file)
    else:
        clock = SystemClock()
    sink = parse_outputs(
        output or ["jsonl"],
        defaults=OutputDefaults(
            retries=webhook_retries,
            backoff_s=webhook_backoff,
            timeout_s=webhook_timeout,
            headers=_headers(webhook_header or []),
            ui_url=ui_url,
            min_severity=min_severity,
        ),
    )

    def on_error(exc: TrailsightError) -> None:
        line = {"event": "watch.error", "at": datetime.now(UTC).isoformat(), "error": str(exc)}
        sys.stderr.write(orjson.dumps(line).decode() + "\n")
        sys.stderr.flush()

    def on_report(report: CycleReport) -> None:
        print_report(report)
        if heartbeat is not None:
            heartbeat.touch()

    code = run_watch(options, settings, sink, clock=clock, once=once, on_report=on_report, on_error=on_error)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``watch`` to the CLI."""
    app.command("watch", help=HELP)(watch_command)
