"""``trailsight detect``: score a time range of the lake and raise findings.

Scores every event of ``[--since, --until)`` against everything before it, groups the unusual
ones into findings, saves them in the store's state database and prints the best ones as JSON
lines (default) or a table. ``--engine spark`` computes the features on Apache Spark instead of
DuckDB (:mod:`trailsight.engines.spark`, same findings); with ``--cloudtrail PATH`` it reads raw
CloudTrail (files, folders, globs, ``s3://``) instead of the store's lake, normalised on Spark by
the ingest code (:mod:`trailsight.engines.spark_cloudtrail`). See docs/detect.md and docs/spark.md.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import orjson
import typer

from trailsight.config import Settings, load_settings
from trailsight.errors import ConfigError
from trailsight.timespan import parse_time

if TYPE_CHECKING:  # the pipeline (Ibis, the detectors) is imported when a command runs, not for every command
    from trailsight.engines.spark_cloudtrail import CloudTrailRead
    from trailsight.finding import Finding
    from trailsight.pipeline import RunStats

_NO_PYSPARK = "--engine spark: PySpark is not installed; run `pip install trailsight[spark]` (needs Java 17)"
_NO_JAVA = "--engine spark: Java is not installed; Spark needs Java 17 (java on PATH or JAVA_HOME)"


class OutputFormat(StrEnum):
    """Output formats of ``detect``."""

    jsonl = "jsonl"
    table = "table"


class Engine(StrEnum):
    """Engines that compute the features of ``detect``."""

    duckdb = "duckdb"
    spark = "spark"


def detect_on_spark(
    store: Path,
    since: datetime | None,
    until: datetime | None,
    settings: Settings,
    detectors: Sequence[str] | None,
    *,
    save: bool,
    min_score: float | None,
    stats: RunStats,
    cloudtrail: Sequence[str] | None = None,
    endpoint_url: str | None = None,
) -> list[Finding]:
    """:func:`trailsight.engines.spark.detect` on a Spark session of its own, stopped afterwards.

    The session is local (``local[2]``) unless ``$TRAILSIGHT_SPARK_MASTER`` names another master.
    With ``cloudtrail`` the events are raw CloudTrail read on Spark instead of the store's lake;
    a summary line goes to stderr and records set aside to ``STORE/quarantine/spark-<run>.jsonl``
    (unless ``save`` is False).
    """
    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError(_NO_PYSPARK)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ConfigError(_NO_JAVA)
    from trailsight.engines import spark

    con = spark.connect()
    try:
        events = None
        if cloudtrail:
            events = _read_cloudtrail(con, store, since, until, settings, cloudtrail, endpoint_url, save=save).events
        return spark.detect(
            store,
            since,
            until,
            settings,
            detectors,
            save=save,
            min_score=min_score,
            stats=stats,
            con=con,
            events=events,
        )
    finally:
        spark.stop(con)


def _read_cloudtrail(
    con: object,
    store: Path,
    since: datetime | None,
    until: datetime | None,
    settings: Settings,
    paths: Sequence[str],
    endpoint_url: str | None,
    *,
    save: bool,
) -> CloudTrailRead:
    from trailsight.engines import spark
    from trailsight.engines.spark_cloudtrail import read_for_store

    ranged = since is not None and until is not None
    raw, path = read_for_store(
        spark.spark_session(con),
        store,
        paths,
        since if ranged else None,
        until if ranged else None,
        settings,
        endpoint_url,
        save=save,
    )
    typer.echo(raw.line(), err=True)
    if raw.quarantined and save:
        typer.echo(f"{raw.quarantined:,} record(s) or file(s) set aside: {path}", err=True)
    return raw


def write_jsonl(findings: list[Finding], out: IO[bytes]) -> None:
    """One finding per line (the full :meth:`Finding.to_dict` form)."""
    for f in findings:
        out.write(orjson.dumps(f.to_dict()) + b"\n")


def _table(findings: list[Finding], total: int, stats: RunStats) -> None:
    from rich.console import Console

    from trailsight.findings.render import finding_table

    console = Console(soft_wrap=False, width=max(160, Console().width))
    console.print(finding_table([f.to_dict() for f in findings]))
    console.print(
        f"{stats.events} events scored from {stats.since:%Y-%m-%d %H:%M} to {stats.until:%Y-%m-%d %H:%M} UTC, "
        f"{stats.unusual_events} unusual, {total} finding(s) in {stats.seconds:.1f} s"
        + (f" ({len(findings)} shown; --max-findings to see more)" if len(findings) < total else ""),
        highlight=False,
    )


def detect_command(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb).")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start of the range (ISO date/time, UTC if no zone, or 7d/24h/30m ago)."),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the range, exclusive (same forms).")] = None,
    detectors: Annotated[
        str | None,
        typer.Option(
            "--detectors",
            help="Comma-separated detector names (default: the default set, as changed by [detectors.NAME] enabled).",
        ),
    ] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.jsonl,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the output to FILE.")] = None,
    max_findings: Annotated[int, typer.Option("--max-findings", min=0, help="Print at most N findings.")] = 100,
    min_score: Annotated[
        float | None,
        typer.Option(
            "--min-score", min=0.0, max=1.0, help="Raise findings scoring at least X (default 0.5; gated ones always)."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings file (trailsight.toml).")] = None,
    no_save: Annotated[
        bool, typer.Option("--no-save", help="Do not store the findings in the state database.")
    ] = False,
    engine: Annotated[
        Engine, typer.Option("--engine", help="Engine that computes the features (spark needs trailsight[spark]).")
    ] = Engine.duckdb,
    cloudtrail: Annotated[
        list[str] | None,
        typer.Option(
            "--cloudtrail",
            help="With --engine spark: raw CloudTrail (file, folder, glob, s3://bucket/prefix) instead of the lake.",
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", help="S3 endpoint of --cloudtrail s3:// (default $AWS_ENDPOINT_URL)."),
    ] = None,
) -> None:
    """Score [--since, --until) against all history before it and raise findings.

    Without --since/--until the last UTC day with data is scored.
    """
    from trailsight.pipeline import RunStats, detect, top_findings

    settings = load_settings(config)
    names = [n.strip() for n in detectors.split(",") if n.strip()] if detectors else None
    stats = RunStats()
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if cloudtrail and engine is not Engine.spark:
        raise ConfigError("--cloudtrail needs --engine spark (--engine duckdb reads the lake that ingest fills)")
    if endpoint_url and not cloudtrail:
        raise ConfigError("--endpoint-url is for --cloudtrail s3:// paths")
    if engine is Engine.spark:
        findings = detect_on_spark(
            store,
            start,
            end,
            settings,
            names,
            save=not no_save,
            min_score=min_score,
            stats=stats,
            cloudtrail=cloudtrail,
            endpoint_url=endpoint_url,
        )
    else:
        findings = detect(store, start, end, settings, names, save=not no_save, min_score=min_score, stats=stats)
    shown = top_findings(findings, max_findings)
    if output_format is OutputFormat.table and output is None:
        _table(shown, len(findings), stats)
        return
    if output is not None:
        with output.open("wb") as fh:
            if output_format is OutputFormat.jsonl:
                write_jsonl(shown, fh)
            else:
                for f in shown:
                    fh.write(
                        f"{f.score:.3f}\t{f.severity_label}\t{f.principal}\t{f.first_seen.isoformat()}\t{f.title}\n".encode()
                    )
        typer.echo(f"{len(shown)} of {len(findings)} finding(s) written to {output}", err=True)
        return
    write_jsonl(shown, sys.stdout.buffer)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add ``detect`` to the CLI."""
    app.command("detect")(detect_command)
