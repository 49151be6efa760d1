"""``trailsight ingest``: read CloudTrail into a store (see docs/ingest.md and :mod:`trailsight.ingest`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from trailsight.config import load_settings
from trailsight.timespan import parse_time

HELP = (
    "Read CloudTrail from PATH... into the store's Parquet lake: folders in the CloudTrail S3 layout "
    '(AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/), .json / .json.gz files of {"Records": [...]}, '
    "JSON lines, globs, '-' for stdin, or s3://bucket/prefix.\n\n"
    "Files already ingested (same size and mtime / ETag) are skipped; events already in the lake "
    "are dropped as duplicates. Bad files and records are quarantined (STORE/quarantine/<run>.jsonl) "
    "and never stop the run.\n\n"
    "Exit codes: 0 done; 3 done, but records or files were quarantined; 1 an error stopped the run; "
    "2 bad usage."
)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Folders, files, globs, '-' (stdin), s3://bucket/prefix, or one sqs://QUEUE_URL (drained once).",
            show_default=False,
        ),
    ],
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb); created if new.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only events at or after this time (ISO date/time UTC, or 7d/24h).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only events before this time (same forms).")] = None,
    account: Annotated[
        list[str] | None, typer.Option("--account", help="Only this account id (repeatable or comma-separated).")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Only this region (repeatable or comma-separated).")
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option("--endpoint-url", help="S3 endpoint for s3:// sources (default $AWS_ENDPOINT_URL or AWS)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Worker processes (default: CPUs, at most 4; 0 = in this process)."),
    ] = None,
    batch_rows: Annotated[
        int | None, typer.Option("--batch-rows", help="Rows per committed batch (default 250000).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Read files the manifest says are done (duplicates are still dropped).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar, even on a terminal.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="Settings file (default ./trailsight.toml).")] = None,
) -> None:
    """Ingest CloudTrail into a store."""
    from trailsight.ingest import ingest
    from trailsight.ingest.pipeline import Progress

    settings = load_settings(config)
    if any(p.startswith("sqs://") for p in paths):
        _drain(paths, store, settings, endpoint_url, workers, json_out)
        return
    show = sys.stderr.isatty() and not no_progress and not json_out

    bar = None
    task_id = None
    if show:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        bar = Bar(
            TextColumn("ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[records]:,} records · {task.fields[new]:,} new"),
            TextColumn("· {task.fields[bad]} quarantined"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task_id = bar.add_task("files", total=None, records=0, new=0, bad=0)
        bar.start()

    def on_progress(p: Progress) -> None:
        if bar is not None and task_id is not None:
            bar.update(
                task_id,
                completed=p.files_done,
                total=max(p.files_found, p.files_done) or None,
                records=p.records,
                new=p.new,
                bad=p.quarantined,
            )

    try:
        summary = ingest(
            paths,
            store,
            settings,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            accounts=_split(account),
            regions=_split(region),
            endpoint_url=endpoint_url,
            workers=workers,
            batch_rows=batch_rows,
            force=force or None,
            progress=on_progress if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.stop()
    for path, why in summary.skipped_paths:
        typer.echo(f"skipped {path}: {why}", err=True)
    if json_out:
        typer.echo(orjson.dumps(summary.to_dict()).decode())
    else:
        typer.echo(summary.line())
        if summary.enrich_errors:
            typer.echo(f"warning: enrichment failed for {summary.enrich_errors:,} events (kept without it)", err=True)
    if summary.exit_code:
        sys.exit(summary.exit_code)


def _drain(
    paths: list[str], store: Path, settings: Any, endpoint_url: str | None, workers: int | None, json_out: bool
) -> None:
    """``ingest sqs://...``: read the queue once until it is empty, then exit."""
    from trailsight.errors import ConfigError
    from trailsight.ingest.sqs import drain_queue
    from trailsight.store.layout import StoreLayout

    if len(paths) != 1:
        raise ConfigError("an sqs:// source must be the only path")
    report = drain_queue(paths[0], StoreLayout(store), settings, endpoint_url=endpoint_url, workers=workers)
    if json_out:
        typer.echo(orjson.dumps(report.to_dict()).decode())
    else:
        typer.echo(
            f"{report.messages:,} messages ({report.deleted:,} deleted, {report.left:,} left, "
            f"{report.poison:,} poison); "
            f"{report.files:,} files, {report.records_in:,} records in = {report.stored:,} stored + "
            f"{report.duplicates:,} duplicates + {report.filtered:,} filtered + {report.quarantined:,} quarantined "
            f"in {report.seconds:.1f}s"
        )
    for line in report.errors[:20]:
        typer.echo(f"warning: {line}", err=True)
    if report.quarantined:
        sys.exit(3)


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the CLI."""
    app.command("ingest", help=HELP)(ingest_command)
