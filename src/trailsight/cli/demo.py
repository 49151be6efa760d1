"""``trailsight demo``: simulate an organisation, ingest it, detect, and show the top findings.

On first use it fetches the geo / ASN reference data (``trailsight data fetch``) with a progress
bar; without a network it says so in one line and goes on without geo. Everything runs locally
in a folder of its own (a new temporary folder unless ``--out`` is given) and is kept afterwards,
so that ``trailsight serve --store <folder>/store`` opens the same findings in the web UI.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from trailsight.config import Settings
from trailsight.errors import ConfigError, ReferenceDataError

DEMO_DAYS = 14
DEMO_PRINCIPALS = 20


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _label_index(labels: dict[str, Any]) -> dict[str, str]:
    index: dict[str, str] = {}
    for lab in labels["attacks"]:
        for eid in lab["event_ids"]:
            index[eid] = f"attack: {lab['name']}"
    for lab in labels["benign"]:
        for eid in lab["event_ids"]:
            index.setdefault(eid, f"benign: {lab['name']}")
    return index


def _matched(event_ids: list[str], index: dict[str, str]) -> str:
    hits: dict[str, int] = {}
    for eid in event_ids:
        if eid in index:
            hits[index[eid]] = hits.get(index[eid], 0) + 1
    if not hits:
        return "not injected"
    return max(hits.items(), key=lambda kv: kv[1])[0]


def _reference_data(console: Console) -> Settings:
    """Settings for the demo's ingest: the geo / ASN data fetched on first use, or geo off when that fails."""
    from trailsight import refdata
    from trailsight.cli.data import download_progress

    folder, _ = refdata.resolve_folder()
    if not refdata.missing_datasets(folder):
        return Settings()
    t = time.perf_counter()
    try:
        with download_progress(console) as progress:
            results = refdata.fetch(folder, progress=progress)
    except ReferenceDataError as exc:
        console.print(
            f"[yellow]0. data[/]      no geo data, going on without it (country, city, ASN empty): {escape(str(exc))}",
            soft_wrap=True,
        )
        return Settings(data={"geo": {"enabled": False}})
    fetched = sum(r.download_bytes for r in results)
    console.print(
        f"[bold]0. data[/]      geo / ASN data fetched once into {escape(str(folder))} "
        f"({fetched / 1e6:,.1f} MB, {time.perf_counter() - t:.1f} s; `trailsight data status` shows it)",
        soft_wrap=True,
    )
    return Settings()


def demo_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for logs/ and store/ (default: a new temp folder).")
    ] = None,
    days: Annotated[int, typer.Option("--days", help="Days of history to simulate.")] = DEMO_DAYS,
    principals: Annotated[
        int, typer.Option("--principals", help="People and workloads to simulate.")
    ] = DEMO_PRINCIPALS,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the simulated organisation.")] = 7,
    top: Annotated[int, typer.Option("--top", min=1, help="How many findings to show.")] = 10,
) -> None:
    """Simulate a small organisation with attacks, ingest it, detect, and print the top findings."""
    from trailsight.findings.names import short_name
    from trailsight.ingest import ingest
    from trailsight.pipeline import detect
    from trailsight.simulate import simulate
    from trailsight.stories import fold

    console = Console(highlight=False)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="trailsight-demo-"))
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out: {out} is not empty (choose a new folder)")
    logs, store = out / "logs", out / "store"
    began = time.perf_counter()
    settings = _reference_data(console)

    t = time.perf_counter()
    sim = simulate(logs, days=days, principals=principals, seed=seed, compresslevel=1)
    console.print(
        f"[bold]1. simulate[/]  {sim.events:,} CloudTrail events of {sim.principals} principals over {days} days, "
        f"{sim.attacks} attacks and {sim.benign} benign surprises injected ({time.perf_counter() - t:.1f} s)"
    )
    t = time.perf_counter()
    summary = ingest([logs], store, settings)
    console.print(f"[bold]2. ingest[/]    {escape(summary.line())}")
    if summary.quarantined:
        console.print(f"[yellow]   {summary.quarantined} records were quarantined: see {summary.quarantine_file}[/]")

    labels = json.loads(sim.labels_path.read_text(encoding="utf-8"))
    since, until = _utc(labels["history_end"]), _utc(labels["end"])
    t = time.perf_counter()
    findings = detect(store, since, until)
    console.print(
        f"[bold]3. detect[/]    {len(findings)} findings between {since:%Y-%m-%d} and {until:%Y-%m-%d} "
        f"(the days before are history) ({time.perf_counter() - t:.1f} s)"
    )

    index = _label_index(labels)
    ranked = fold(findings)  # stories first-class, their members folded under them
    shown = ranked[:top]
    console.print(
        f"\n[bold]Top {len(shown)} findings[/] (risk 0-100; in brackets: what the simulator injected there)\n"
    )
    for rank, f in enumerate(shown, 1):
        console.print(
            f"[bold]{rank:>2}. risk {f.risk_score:>3}  {f.severity_label:<6}[/] {escape(f.finding_type)}  "
            f"[bold]{escape(short_name(f.actor))}[/]  {f.first_seen:%Y-%m-%d %H:%M} UTC  "
            f"[dim]({escape(_matched(f.event_ids, index))})[/]"
        )
        for line in (f.explanation or [f.title])[:4]:
            console.print(f"      {escape(line)}")
        console.print()
    attacks = labels["attacks"]
    found = {
        lab["name"]
        for lab in attacks
        if any(set(lab["event_ids"]) & set(f.event_ids) for f in ranked[: max(top, len(attacks))])
    }
    console.print(
        f"Injected attacks among the top {max(top, len(attacks))} findings: {len(found)} of {len(attacks)}; "
        f"labels: {sim.labels_path}"
    )
    console.print(f"Total {time.perf_counter() - began:.1f} s. Open the findings in the web UI with:")
    console.print(f"  [bold]trailsight serve --store {escape(str(store))}[/]")
    console.print(f"or list them with: trailsight findings list --store {escape(str(store))}")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the CLI."""
    app.command("demo")(demo_command)
