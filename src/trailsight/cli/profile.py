"""``trailsight profile PRINCIPAL``: a principal's usual behaviour, with its working hours as a heatmap."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from trailsight.errors import ConfigError, StoreError
from trailsight.findings.names import short_arn
from trailsight.findings.render import safe

_SHADES = " ░▒▓█"
_FREQ_STYLE = {"frequent": "green", "infrequent": "yellow", "rare": "red", "unseen": "dim"}


def heatmap(counts: Sequence[Sequence[int]]) -> Text:
    """A 7 x 24 text heatmap (rows Mon..Sun, columns UTC hours); shade by share of the busiest cell."""
    peak = max((c for row in counts for c in row), default=0)
    text = Text("      " + "".join(f"{h:<3d}" if h % 3 == 0 else "" for h in range(24)).rstrip() + "  (UTC)\n")
    from trailsight.investigate.profile import DAYS

    for day, row in zip(DAYS, counts, strict=True):
        cells = []
        for c in row:
            level = 0 if c == 0 or peak == 0 else 1 + min(3, int(4 * c / (peak + 1)))
            cells.append(_SHADES[level])
        text.append(f"  {day} ", style="dim")
        text.append("".join(cells), style="cyan")
        text.append(f"  {sum(row):>6}\n", style="dim")
    text.append(f"  each column is one hour; █ = busiest ({peak} events in that hour of that weekday)", style="dim")
    return text


def _table(title: str, items: Sequence[Mapping[str, Any]], limit: int, width: int = 80) -> RenderableType:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE, pad_edge=False)
    table.add_column("value", overflow="fold", max_width=width)
    table.add_column("events", justify="right")
    table.add_column("days", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("frequency")
    table.add_column("last seen (UTC)", no_wrap=True)
    for item in items[:limit]:
        freq = str(item.get("frequency") or "")
        table.add_row(
            Text(safe(item.get("value"), 200)),
            str(item.get("count", "")),
            str(item.get("days", "")),
            str(item.get("failures") or ""),
            Text(freq, style=_FREQ_STYLE.get(freq, "")),
            str(item.get("last_seen") or "").replace("T", " ").replace("Z", "")[:19],
        )
    if len(items) > limit:
        table.caption = f"{len(items) - limit} more not shown"
    return table


def profile_view(p: Mapping[str, Any], *, limit: int = 20) -> Group:
    """The profile as rich renderables."""
    who = safe(p.get("principal"), 200)
    if p.get("actor"):
        who = f"{safe(p['actor'], 200)}  (one person of {short_arn(str(p.get('principal') or ''))})"
    head = Text.assemble(
        (who, "bold"),
        (f"  ({safe(p.get('identity_type'))}, account {safe(p.get('account_id'))})\n", "dim"),
        (
            f"{p.get('events', 0)} events from {safe(p.get('first_seen'))} to {safe(p.get('last_seen'))} "
            f"({p.get('history_days', 0)} days of history)",
            "",
        ),
    )
    parts: list[RenderableType] = [head]
    others = [m for m in p.get("matches", [])[1:]]
    if others:
        parts.append(Text("also matching: " + ", ".join(safe(m, 120) for m in others[:5]), style="dim"))
    auto = p.get("automation")
    if auto:
        kind = "automation (a machine identity)" if auto.get("is_automation") else "a person"
        parts.append(
            Text(
                f"Behaves like {kind}: automation likelihood {auto['likelihood']:.2f}; "
                f"{auto['interactive_share']:.0%} of calls from the console or CLI, "
                f"{auto['aws_network_share']:.0%} from AWS networks",
                style="",
            )
        )
    signin = p.get("signin")
    if signin:
        parts.append(Text(f"Console sign-in: {signin['line']}", style=""))
    peers = p.get("peers") or []
    if peers:
        names = ", ".join(f"{short_arn(str(x['principal']))} ({x['similarity']:.2f})" for x in peers)
        parts.append(Text(f"Similar principals: {safe(names, 400)}", style=""))
    parts.append(Text("\nWorking hours", style="bold"))
    parts.append(heatmap(p.get("heatmap") or [[0] * 24 for _ in range(7)]))
    for key, title in (
        ("apis", "Usual APIs"),
        ("networks", "Networks (ASN)"),
        ("countries", "Countries"),
        ("cities", "Cities"),
        ("source_ips", "Source IPs"),
        ("user_agents", "User agents"),
        ("regions", "Regions"),
        ("access_keys", "Access keys"),
        ("error_codes", "Error codes"),
    ):
        items = p.get(key) or []
        if items:
            parts.append(_table(title, items, limit))
    return Group(*parts)


def profile_command(
    principal: Annotated[str, typer.Argument(help="Principal ARN, actor ARN, or a name (alice, role name).")],
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb).")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows per table.")] = 20,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text (default) or json.")] = "text",
) -> None:
    """Show a principal's usual behaviour: APIs with frequency classes, networks, countries, agents, hours."""
    if fmt not in ("text", "json"):
        raise ConfigError(f"--format {fmt!r}: expected text or json")
    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.profile import principal_profile

    with open_lake(store) as con:
        data = principal_profile(con, principal, top=max(limit, 50))
    if not data.get("matches"):
        raise StoreError(f"principal {principal!r}: no events in {store}")
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
        return
    Console(width=None if sys.stdout.isatty() else 140).print(profile_view(data, limit=limit))


def register(app: typer.Typer) -> None:
    """Add ``profile`` to the CLI."""
    app.command("profile")(profile_command)
