"""``trailsight simulate``: write CloudTrail for a synthetic organisation with injected attacks."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from trailsight.errors import ConfigError


def _parse_start(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--start: {value!r} is not a date (YYYY-MM-DD)") from None


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write AWSLogs/... and .trailsight/labels.json into.")],
    days: Annotated[
        int | None,
        typer.Option("--days", help="Days to simulate (default 30; in scale mode events/100,000 within 1..30)."),
    ] = None,
    principals: Annotated[
        int, typer.Option("--principals", help="People and workloads (AWS services come on top).")
    ] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives byte-identical files.")] = 7,
    attacks: Annotated[
        str, typer.Option("--attacks", help="all, none, or a comma-separated list of attack names.")
    ] = "all",
    benign: Annotated[bool, typer.Option("--benign/--no-benign", help="Add the labelled benign surprises.")] = True,
    events: Annotated[
        int | None, typer.Option("--events", help="Scale mode: write exactly N events of a simpler organisation, fast.")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="First simulated day (YYYY-MM-DD), default 2025-02-03.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Scale mode: processes writing in parallel (0 = one per CPU core).")
    ] = 0,
) -> None:
    """Write weeks of CloudTrail for a believable organisation, with labelled attacks, as AWS delivers it to S3."""
    from trailsight.simulate import DEFAULT_START, parse_attacks, simulate, simulate_scale

    first = _parse_start(start) or DEFAULT_START
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out: {out} is not empty (choose a new folder)")
    if events is not None:
        n_workers = workers or (os.cpu_count() or 1)
        scale_days = days if days is not None else max(1, min(30, events // 100_000))
        result = simulate_scale(out, events=events, days=scale_days, seed=seed, start=first, workers=n_workers)
        typer.echo(
            f"wrote {result.events:,} events in {result.files:,} files to {out} "
            f"in {result.seconds:.1f} s: {result.events_per_second:,.0f} events/s ({n_workers} workers)"
        )
        return
    names = parse_attacks(attacks)
    res = simulate(
        out,
        days=days if days is not None else 30,
        principals=principals,
        seed=seed,
        attacks=names,
        benign=benign,
        start=first,
    )
    typer.echo(
        f"wrote {res.events:,} events in {res.files:,} files to {out / 'AWSLogs'}\n"
        f"organisation: {res.principals} principals (+ AWS services), accounts "
        f"{', '.join(f'{env} {acct}' for env, acct in res.accounts.items())}\n"
        f"labelled: {res.attacks} attacks, {res.benign} benign surprises in {res.labels_path}"
    )


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the CLI."""
    app.command("simulate")(simulate_command)
