"""``trailsight investigate ip IP | key ACCESS_KEY | principal P``: pivots for an investigation."""

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
from rich.tree import Tree

from trailsight.errors import ConfigError, StoreError
from trailsight.findings.names import short_arn
from trailsight.findings.render import safe

investigate_app = typer.Typer(
    name="investigate",
    help="Pivot on an IP address, an access key or a principal (with the roles it assumed).",
    no_args_is_help=True,
    add_completion=False,
)

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb).")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text (default) or json.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows per table.")]


def _time(value: Any) -> str:
    return str(value or "").replace("T", " ").replace("Z", "")[:19]


def api_table(apis: Sequence[Mapping[str, Any]], limit: int, title: str = "APIs") -> Table:
    """APIs with successes, failures and error codes."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE, pad_edge=False)
    table.add_column("service", style="cyan", no_wrap=True)
    table.add_column("API", overflow="fold")
    table.add_column("ok", justify="right", style="green")
    table.add_column("failed", justify="right", style="red")
    table.add_column("errors", overflow="fold")
    table.add_column("first (UTC)", no_wrap=True)
    table.add_column("last (UTC)", no_wrap=True)
    for a in apis[:limit]:
        errors = ", ".join(f"{safe(k, 60)}×{v}" for k, v in (a.get("error_codes") or {}).items())
        table.add_row(
            Text(safe(a.get("service"), 40)),
            Text(safe(a.get("event_name"), 80)),
            str(a.get("success", 0)),
            str(a.get("failure") or ""),
            Text(errors),
            _time(a.get("first_seen")),
            _time(a.get("last_seen")),
        )
    if len(apis) > limit:
        table.caption = f"{len(apis) - limit} more not shown"
    return table


def _simple(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], limit: int) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE, pad_edge=False)
    for col in columns:
        table.add_column(col, overflow="fold", max_width=90)
    for row in rows[:limit]:
        cells = []
        for col in columns:
            value = row.get(col)
            if col in ("first_seen", "last_seen", "event_time"):
                value = _time(value)
            elif col == "asn" and value is not None:
                value = f"AS{value}"
            cells.append(Text(safe(value, 200)))
        table.add_row(*cells)
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more not shown"
    return table


def _summary(label: str, data: Mapping[str, Any]) -> Text:
    return Text.assemble(
        (f"{label}\n", "bold"),
        (
            f"{data.get('events', 0)} events ({data.get('failures', 0)} failed) "
            f"from {_time(data.get('first_seen'))} to {_time(data.get('last_seen'))} UTC",
            "",
        ),
    )


def ip_view(d: Mapping[str, Any], limit: int) -> Group:
    """Rich view of :func:`ip_pivot`."""
    net = d.get("network") or {}
    where = ", ".join(
        safe(x, 60)
        for x in (
            f"AS{net['asn']}" if net.get("asn") is not None else None,
            net.get("as_org"),
            net.get("city"),
            net.get("country"),
            net.get("ip_kind"),
        )
        if x
    )
    parts: list[RenderableType] = [_summary(f"IP {safe(d.get('ip'), 60)}" + (f"  ({where})" if where else ""), d)]
    parts.append(
        _simple(
            "Who used it",
            d.get("principals") or [],
            ["principal", "identity_type", "events", "failures", "apis", "first_seen", "last_seen"],
            limit,
        )
    )
    parts.append(api_table(d.get("apis") or [], limit))
    parts.append(
        _simple("Access keys", d.get("access_keys") or [], ["value", "events", "first_seen", "last_seen"], limit)
    )
    parts.append(_simple("User agents", d.get("user_agents") or [], ["value", "events", "last_seen"], limit))
    return Group(*parts)


def key_view(d: Mapping[str, Any], limit: int) -> Group:
    """Rich view of :func:`key_pivot`."""
    parts: list[RenderableType] = [_summary(f"Access key {safe(d.get('access_key'), 40)}", d)]
    if d.get("issued_by"):
        parts.append(
            _simple(
                "Issued by",
                d["issued_by"],
                ["event_time", "principal", "event_name", "role_arn", "session_name", "source_ip"],
                limit,
            )
        )
    lineage = d.get("lineage") or {}
    if lineage.get("upstream") or lineage.get("downstream"):
        parts.append(lineage_tree(d.get("access_key"), lineage, limit))
    parts.append(
        _simple(
            "Who used it",
            d.get("principals") or [],
            ["principal", "events", "failures", "first_seen", "last_seen"],
            limit,
        )
    )
    parts.append(
        _simple(
            "Where from",
            d.get("source_ips") or [],
            ["ip", "asn", "as_org", "country", "events", "failures", "first_seen"],
            limit,
        )
    )
    parts.append(api_table(d.get("apis") or [], limit))
    parts.append(_simple("User agents", d.get("user_agents") or [], ["value", "events", "last_seen"], limit))
    return Group(*parts)


def _link_label(x: Mapping[str, Any]) -> Text:
    made = x.get("child_key") or str(x.get("child") or "")
    return Text.assemble(
        (f"{_time(x.get('event_time'))}  ", "dim"),
        (safe(short_arn(str(x.get("parent") or "")), 120), "bold"),
        (f"  {safe(x.get('api'), 40)} → ", "cyan"),
        (safe(short_arn(made) if made.startswith("arn:") else made, 120), ""),
        (f"  (account {safe(x.get('child_account'))})" if x.get("child_account") != x.get("account_id") else "", "dim"),
        (f"  from {safe(x.get('source_ip'), 60)}" if x.get("source_ip") else "", "dim"),
    )


def lineage_tree(key: Any, lineage: Mapping[str, Any], limit: int) -> Tree:
    """The key's lineage: the links that led to it, then what its holder made."""
    tree = Tree(Text(f"Lineage of {safe(key, 40)}", style="bold"))
    node = tree
    for x in (lineage.get("upstream") or [])[:limit]:
        node = node.add(_link_label(x))
    for x in (lineage.get("downstream") or [])[:limit]:
        node.add(_link_label(x))
    return tree


def _chain_tree(tree: Tree, chains: Sequence[Mapping[str, Any]], limit: int) -> None:
    for c in chains[:limit]:
        session = c.get("session") or {}
        outcome = f"{c.get('attempts', 0)} attempt(s), {c.get('failures', 0)} refused" + (
            f" ({', '.join(safe(k, 40) for k in c.get('error_codes') or {})})" if c.get("failures") else ""
        )
        label = Text.assemble(
            ("assumed ", "dim"),
            (safe(short_arn(str(c.get("role_arn") or "(unknown role)")), 120), "bold"),
            (f"  session {safe(c.get('session_name'), 60)}" if c.get("session_name") else "", ""),
            (f"  at {_time(c.get('assumed_at'))}", "dim"),
            (f"  {outcome}", "red" if c.get("failures") else "dim"),
        )
        node = tree.add(label)
        keys = c.get("access_keys") or []
        if keys:
            node.add(Text("key " + ", ".join(safe(k, 40) for k in keys), style="dim"))
        if session.get("events"):
            node.add(
                Text(
                    f"session: {session['events']} events ({session.get('failures', 0)} failed), "
                    f"{_time(session.get('first_seen'))} → {_time(session.get('last_seen'))}"
                )
            )
            for a in (session.get("apis") or [])[:8]:
                errors = ", ".join(f"{safe(k, 40)}×{v}" for k, v in (a.get("error_codes") or {}).items())
                node.add(
                    Text.assemble(
                        (f"{safe(a.get('service'), 30)}:{safe(a.get('event_name'), 60)}", "cyan"),
                        (f"  ok {a.get('success', 0)}", "green"),
                        (f"  failed {a.get('failure', 0)}" + (f" ({errors})" if errors else ""), "red")
                        if a.get("failure")
                        else ("", ""),
                    )
                )
            if len(session.get("apis") or []) > 8:
                node.add(Text(f"… {len(session['apis']) - 8} more APIs", style="dim"))
            if session.get("assumed"):
                _chain_tree(node, session["assumed"], limit)
        elif not c.get("failures"):
            node.add(Text("no activity of this session in the lake", style="dim"))
    if len(chains) > limit:
        tree.add(Text(f"… {len(chains) - limit} more", style="dim"))


def principal_view(d: Mapping[str, Any], limit: int) -> Group:
    """Rich view of :func:`principal_pivot`."""
    who = safe(d.get("principal"), 200)
    if d.get("actor"):
        who = f"{safe(d['actor'], 200)} (one person of {short_arn(str(d.get('principal') or ''))})"
    label = f"{who}  ({safe(d.get('identity_type'))}, account {safe(d.get('account_id'))})"
    parts: list[RenderableType] = [_summary(label, d)]
    others = list(d.get("matches") or [])[1:]
    if others:
        parts.append(Text("also matching: " + ", ".join(safe(m, 120) for m in others[:5]), style="dim"))
    if d.get("signin"):
        parts.append(Text(f"Console sign-in: {d['signin']['line']}"))
    parts.append(api_table(d.get("apis") or [], limit))
    if d.get("usual_networks"):
        parts.append(Text(safe(d["usual_networks"]["line"], 300)))
    parts.append(
        _simple(
            "Where from",
            d.get("source_ips") or [],
            ["ip", "asn", "as_org", "country", "events", "failures", "first_seen", "last_seen"],
            limit,
        )
    )
    parts.append(
        _simple("Access keys", d.get("access_keys") or [], ["value", "events", "first_seen", "last_seen"], limit)
    )
    parts.append(_simple("User agents", d.get("user_agents") or [], ["value", "events", "last_seen"], limit))
    chains = d.get("role_chains") or []
    tree = Tree(Text(f"Role chains ({len(chains)} role sessions)", style="bold"))
    if not chains:
        tree.add(Text("assumed no roles", style="dim"))
    _chain_tree(tree, chains, limit)
    parts.append(tree)
    return Group(*parts)


def _emit(data: Mapping[str, Any], view: RenderableType | None, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
        return
    Console(width=None if sys.stdout.isatty() else 140).print(view)


def _check(fmt: str) -> None:
    if fmt not in ("text", "json"):
        raise ConfigError(f"--format {fmt!r}: expected text or json")


@investigate_app.command("ip")
def ip_command(
    ip: Annotated[str, typer.Argument(help="Source IP address (as CloudTrail writes it).")],
    store: StoreOpt,
    fmt: FormatOpt = "text",
    limit: LimitOpt = 20,
) -> None:
    """Who used an IP address, since when, and what they called."""
    _check(fmt)
    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.pivots import ip_pivot

    with open_lake(store) as con:
        data = ip_pivot(con, ip)
    if not data.get("events"):
        raise StoreError(f"IP {ip!r}: no events in {store}")
    _emit(data, ip_view(data, limit) if fmt == "text" else None, fmt)


@investigate_app.command("key")
def key_command(
    access_key: Annotated[str, typer.Argument(help="Access key id (AKIA… or ASIA…).")],
    store: StoreOpt,
    fmt: FormatOpt = "text",
    limit: LimitOpt = 20,
) -> None:
    """Who used an access key, how it was issued, where from, and what it called."""
    _check(fmt)
    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.lineage import key_lineage
    from trailsight.investigate.pivots import key_pivot

    with open_lake(store) as con:
        data = key_pivot(con, access_key)
    data["lineage"] = key_lineage(store, access_key)
    if not data.get("events") and not data.get("issued_by") and not data["lineage"]["upstream"]:
        raise StoreError(f"access key {access_key!r}: no events in {store}")
    _emit(data, key_view(data, limit) if fmt == "text" else None, fmt)


@investigate_app.command("principal")
def principal_command(
    principal: Annotated[str, typer.Argument(help="Principal ARN, actor ARN, or a name.")],
    store: StoreOpt,
    fmt: FormatOpt = "text",
    limit: LimitOpt = 20,
) -> None:
    """A principal's activity and role chains: the roles it assumed and what those sessions did."""
    _check(fmt)
    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.pivots import principal_pivot

    with open_lake(store) as con:
        data = principal_pivot(con, principal)
    if not data.get("matches"):
        raise StoreError(f"principal {principal!r}: no events in {store}")
    _emit(data, principal_view(data, limit) if fmt == "text" else None, fmt)


def register(app: typer.Typer) -> None:
    """Add the ``investigate`` command group to the CLI."""
    app.add_typer(investigate_app, name="investigate")
