"""Rich terminal rendering of findings: the list table and ``findings show``'s incident summary.

Every value shown comes from CloudTrail and is attacker-controlled, so nothing is ever parsed as
rich markup: values go into :class:`rich.text.Text` objects as plain text, control characters
(newlines, tabs, escape sequences, bidirectional and zero-width characters) are shown escaped
(:func:`trailsight.text.visible`), and long values are clipped with a note of
their full length, so a 100 kB user agent or a ``[bold]`` principal cannot break the layout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from trailsight.enrich.netclass import label as net_label
from trailsight.findings.names import short_arn
from trailsight.text import visible

__all__ = ["finding_table", "finding_view", "safe"]

_SEVERITY_STYLE = {"High": "bold red", "Medium": "bold yellow", "Low": "cyan"}
_STATUS_STYLE = {
    "Open": "bold",
    "Acknowledged": "blue",
    "Dismissed": "dim",
    "Malicious": "bold red",
    "Suppressed": "dim italic",
}


def safe(value: Any, limit: int = 200) -> str:
    """Plain one-line text for a terminal: control characters escaped, clipped to ``limit``."""
    if value is None:
        return ""
    text = str(value)
    full = len(text)
    text = visible(text[: limit * 2])
    if len(text) > limit or full > limit * 2:
        text = text[: max(1, limit - 1)] + f"… ({full:,} chars)"
    return text


def _t(value: Any, style: str = "", limit: int = 200) -> Text:
    return Text(safe(value, limit), style=style)


def _time(value: Any) -> str:
    text = str(value or "")
    return text.replace("T", " ").replace("Z", "")[:19] if text else ""


def _list_title(f: Mapping[str, Any], who: str) -> str:
    """The title without a leading "<who>: " (the principal column already says who)."""
    title = str(f.get("title") or "")
    head, sep, rest = title.partition(": ")
    names = {who.rsplit("/", 1)[-1], str(f.get("principal") or "").rsplit("/", 1)[-1]} - {""}
    return rest if sep and rest and any(n in head for n in names) else title


def fold_rows(findings: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], bool]]:
    """Rows in order, each story's members (those given) moved under it: (finding, nested)."""
    ids = {str(f.get("id")) for f in findings}
    out: list[tuple[Mapping[str, Any], bool]] = []
    by_story: dict[str, list[Mapping[str, Any]]] = {}
    for f in findings:
        sid = f.get("story_id")
        if sid and str(sid) in ids:
            by_story.setdefault(str(sid), []).append(f)
    for f in findings:
        sid = f.get("story_id")
        if sid and str(sid) in ids:
            continue
        out.append((f, False))
        out += [(m, True) for m in by_story.get(str(f.get("id")), [])]
    return out


def finding_table(findings: Sequence[Mapping[str, Any]], *, total: int | None = None) -> Table:
    """The ``findings list`` table: one row per finding, riskiest first as given."""
    caption = None
    if total is not None and total > len(findings):
        caption = f"{len(findings)} of {total} findings (use --limit / filters to see more)"
    table = Table(box=box.SIMPLE_HEAD, caption=caption, show_lines=False, pad_edge=False, collapse_padding=True)
    table.add_column("id", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("conf", no_wrap=True)
    table.add_column("risk", justify="right", no_wrap=True)
    table.add_column("tactic", max_width=19, overflow="ellipsis", no_wrap=True)
    table.add_column("principal", max_width=28, overflow="fold")
    table.add_column("first seen (UTC)", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("title", ratio=1, min_width=20, overflow="fold")
    for f, nested in fold_rows(findings):
        sev = str(f.get("severity_label") or "")
        status = str(f.get("status") or "")
        who = short_arn(str(f.get("principal") or ""), str(f.get("actor") or ""))
        table.add_row(
            _t(("└ " if nested else "") + str(f.get("id", ""))[: 14 if f.get("steps") else 12]),
            Text(f"{sev} {float(f.get('severity') or 0):.1f}", style=_SEVERITY_STYLE.get(sev, "")),
            _t(f.get("confidence")),
            _t(f.get("risk_score")),
            _t(str(f.get("finding_type") or "").split(":", 1)[0], limit=40),
            _t(who, limit=80),
            _t(_time(f.get("first_seen"))[:16]),
            _t(f.get("count")),
            Text(safe(status), style=_STATUS_STYLE.get(status, "")),
            _t(_list_title(f, who), limit=160),
        )
    return table


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def _header(f: Mapping[str, Any]) -> Panel:
    sev = str(f.get("severity_label") or "")
    status = str(f.get("status") or "Open")
    line1 = Text.assemble(
        ("Severity ", "dim"),
        (f"{sev} {float(f.get('severity') or 0):.1f}", _SEVERITY_STYLE.get(sev, "")),
        ("  Confidence ", "dim"),
        (safe(f.get("confidence")), "bold"),
        ("  Risk ", "dim"),
        (f"{safe(f.get('risk_score'))}/100", "bold"),
        ("  Status ", "dim"),
        (safe(status), _STATUS_STYLE.get(status, "")),
    )
    tactic = f.get("tactic")
    tactic_text = (
        f"{safe(tactic)} ({safe(f.get('tactic_id'))})"
        + (f", technique {safe(f.get('technique'))}" if f.get("technique") else "")
        if tactic
        else "no ATT&CK tactic"
    )
    rows: list[tuple[str, str]] = [
        ("Type", safe(f.get("finding_type"), 120)),
        ("Tactic", tactic_text),
        ("Principal", safe(f.get("principal"), 160) + f"  ({safe(f.get('identity_type'))})"),
    ]
    if f.get("actor") and f.get("actor") != f.get("principal"):
        rows.append(("Actor", safe(f.get("actor"), 160)))
    rows.append(("Account", safe(f.get("account_id"))))
    if f.get("access_keys"):
        rows.append(("Access keys", ", ".join(safe(k, 40) for k in f["access_keys"][:5])))
    if f.get("session_names"):
        rows.append(("Sessions", ", ".join(safe(s, 60) for s in f["session_names"][:5])))
    rows.append(
        ("When", f"{_time(f.get('first_seen'))} → {_time(f.get('last_seen'))} UTC, {safe(f.get('count'))} events")
    )
    rows.append(("Id", safe(f.get("id"), 80)))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, Text(value))
    title = Text(safe(f.get("title") or f.get("finding_type"), 140), style="bold")
    return Panel(Group(line1, grid), title=title, title_align="left", border_style=_SEVERITY_STYLE.get(sev, "white"))


def _explanation(f: Mapping[str, Any]) -> list[RenderableType]:
    lines = [str(x) for x in f.get("explanation") or []]
    if not lines:
        return []
    out: list[RenderableType] = [_section("What happened"), Text(safe(lines[0], 600))]
    for line in lines[1:]:
        out.append(Text.assemble(("  • ", "yellow"), (safe(line, 400), "")))
    return out


def _done(f: Mapping[str, Any]) -> list[RenderableType]:
    """What the calls did, what they touched and who else they involved (GuardDuty's affected resources)."""
    out: list[RenderableType] = []
    effects = f.get("effects") or []
    if effects:
        out.append(_section("What the calls did"))
        for e in effects[:15]:
            style = "bold red" if e.get("succeeded") else "yellow"
            out.append(
                Text.assemble(
                    ("  • ", style),
                    (safe(e.get("description"), 300), ""),
                    (f"  [{safe(e.get('technique'))}, {_time(e.get('event_time'))}]", "dim"),
                )
            )
    resources = f.get("resources") or []
    if resources:
        table = Table(box=box.SIMPLE, pad_edge=False)
        table.add_column("resource", overflow="fold")
        table.add_column("type", overflow="fold")
        table.add_column("calls", justify="right")
        for r in resources[:15]:
            table.add_row(_t(r.get("id"), limit=160), _t(r.get("type"), limit=40), _t(r.get("events")))
        out += [_section("Resources touched"), table]
        if len(resources) > 15:
            out.append(Text(f"… and {len(resources) - 15} more", style="dim"))
    parties = f.get("counterparties") or []
    if parties:
        out.append(_section("Counterparties"))
        out += [
            Text.assemble(("  • ", "dim"), (safe(p.get("kind"), 20) + " ", "dim"), (safe(p.get("id"), 160), "bold"))
            for p in parties[:15]
        ]
    steps = f.get("next_steps") or []
    if steps:
        out.append(_section("Next steps"))
        out += [Text.assemble((f"  {i}. ", "cyan"), (safe(step, 300), "")) for i, step in enumerate(steps, 1)]
    return out


def _apis(f: Mapping[str, Any]) -> list[RenderableType]:
    calls = f.get("anomalous_apis") or []
    if not calls:
        return []
    by_service: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for c in calls:
        by_service[str(c.get("service") or "")].append(c)
    table = Table(box=box.SIMPLE, pad_edge=False)
    table.add_column("service", style="cyan", no_wrap=True)
    table.add_column("API", overflow="fold")
    table.add_column("ok", justify="right", style="green")
    table.add_column("failed", justify="right", style="red")
    table.add_column("errors", overflow="fold")
    for service in sorted(by_service):
        for i, c in enumerate(by_service[service]):
            errors = ", ".join(f"{safe(k, 60)}×{v}" for k, v in (c.get("error_codes") or {}).items())
            table.add_row(
                _t(service if i == 0 else "", limit=40),
                _t(c.get("event_name"), limit=80),
                _t(c.get("success")),
                _t(c.get("failure") or ""),
                Text(errors),
            )
    return [_section("Anomalous APIs by service"), table]


_UNUSUAL_PER_ATTRIBUTE = 6


def _principals(n: Any) -> str:
    count = int(n or 0)
    return f"usual ({count} principal{'s' if count != 1 else ''})"


def _usual_words(items: Iterable[Mapping[str, Any]], limit: int = 3) -> str:
    shown = [u for u in items if u.get("frequency") != "unseen"][:limit]
    return "; ".join(f"{safe(u.get('value'), 40)} ({safe(u.get('frequency'))}, {safe(u.get('count'))}×)" for u in shown)


def _unusual(f: Mapping[str, Any]) -> list[RenderableType]:
    items = list(f.get("unusual") or [])
    if not items:
        return []
    table = Table(box=box.SIMPLE, pad_edge=False)
    table.add_column("attribute", style="cyan", no_wrap=True)
    table.add_column("observed", overflow="fold", max_width=40)
    table.add_column("for principal", no_wrap=True)
    table.add_column("for account", no_wrap=True)
    table.add_column("usual for principal", overflow="fold", ratio=1)
    table.add_column("usual in account", overflow="fold", ratio=1)
    by_attribute: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for u in items:
        by_attribute[str(u.get("attribute") or "")].append(u)
    for attribute, group in by_attribute.items():
        # The usual values are the same for every row of one attribute: show them once.
        cap = 2 if attribute == "user_agent" else _UNUSUAL_PER_ATTRIBUTE  # agents differ per call: two say it
        for i, u in enumerate(group[:cap]):
            first = i == 0
            table.add_row(
                _t(attribute if first else ""),
                _t(u.get("value"), limit=80),
                Text("unusual", style="bold yellow") if u.get("unusual_for_principal") else Text("usual", style="dim"),
                Text("unusual", style="bold yellow")
                if u.get("unusual_for_account")
                else Text(_principals(u.get("principals_in_account_using")), style="dim"),
                Text(_usual_words(u.get("principal_usual") or []) if first else ""),
                Text(_usual_words(u.get("account_usual") or []) if first else ""),
            )
        if len(group) > cap:
            extra = len(group) - cap
            table.add_row("", Text(f"… {extra} more", style="dim"), "", "", "", "")
    return [_section("Unusual vs usual"), table]


def _usual_apis(f: Mapping[str, Any]) -> list[RenderableType]:
    out: list[RenderableType] = []
    for key, label in (("usual_apis_principal", "principal"), ("usual_apis_account", "account")):
        items = f.get(key) or []
        if items:
            words = ", ".join(f"{safe(e.get('value'), 50)} ({safe(e.get('frequency'))})" for e in items[:20])
            out.append(Text.assemble((f"  {label}: ", "dim"), (words, "")))
    return [_section("Usual APIs (top 20)"), *out] if out else []


def _networks(f: Mapping[str, Any]) -> list[RenderableType]:
    nets = f.get("networks") or []
    if not nets:
        return []
    table = Table(box=box.SIMPLE, pad_edge=False)
    for col in ("IP", "kind", "class", "ASN", "org", "city", "country", "events"):
        table.add_column(col, overflow="fold", justify="right" if col == "events" else "left")
    for n in nets[:20]:
        table.add_row(
            _t(n.get("ip"), limit=45),
            _t(n.get("ip_kind")),
            _t(net_label(n.get("net_class")) if n.get("net_class") else ""),
            _t(f"AS{n['asn']}" if n.get("asn") is not None else ""),
            _t(n.get("as_org"), limit=50),
            _t(n.get("city"), limit=40),
            _t(n.get("country")),
            _t(n.get("events")),
        )
    out: list[RenderableType] = [_section("Network"), table]
    if len(nets) > 20:
        out.append(Text(f"… and {len(nets) - 20} more addresses", style="dim"))
    return out


def _agents(f: Mapping[str, Any]) -> list[RenderableType]:
    agents = f.get("user_agents") or []
    if not agents:
        return []
    out: list[RenderableType] = [_section("User agents")]
    out += [Text.assemble(("  • ", "dim"), (safe(a, 240), "")) for a in agents[:5]]
    if len(agents) > 5:
        out.append(Text(f"  … and {len(agents) - 5} more", style="dim"))
    return out


def _timeline(f: Mapping[str, Any], limit: int) -> list[RenderableType]:
    entries = f.get("timeline") or []
    if not entries:
        return []
    table = Table(box=box.SIMPLE, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("service", style="cyan", no_wrap=True)
    table.add_column("API", overflow="fold")
    table.add_column("source IP", overflow="fold")
    table.add_column("error", overflow="fold", style="red")
    shown = entries if len(entries) <= limit else entries[: limit // 2] + entries[-(limit - limit // 2) :]
    for i, e in enumerate(shown):
        if len(entries) > limit and i == limit // 2:
            table.add_row("", Text(f"… {len(entries) - limit} more …", style="dim"), "", "", "", "")
        table.add_row(
            Text("!", style="bold yellow") if e.get("unusual") else Text(" "),
            _t(_time(e.get("event_time"))),
            _t(e.get("service"), limit=30),
            _t(e.get("event_name"), limit=80),
            _t(e.get("source_ip"), limit=45),
            _t(e.get("error_code"), limit=60),
        )
    return [_section("Timeline  (! = unusual for this principal)"), table]


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.1f} days".replace(".0 days", " days")


def story_sentences(f: Mapping[str, Any]) -> list[str]:
    """A story's steps in words, one sentence each, in time order (``findings show``, the web page)."""
    out: list[str] = []
    previous: datetime | None = None
    for step in f.get("steps") or []:
        when = step.get("time")
        t = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None
        who = short_arn(str(step.get("principal") or ""), str(step.get("actor") or "")) or "someone"
        lead = (
            f"{_time(when)[:16]} UTC"
            if previous is None or t is None
            else f"{_ago((t - previous).total_seconds())} later"
        )
        where = f" from {step['network']}" if step.get("network") else ""
        account = f" in account {step['account_id']}" if step.get("account_id") else ""
        tactic = f" [{step['tactic']}]" if step.get("tactic") else ""
        member = f" (finding {str(step['finding_id'])[:12]})" if step.get("finding_id") else ""
        out.append(f"{lead}, {who}{account} {step.get('what')}{where}{tactic}{member}.")
        previous = t or previous
    return out


def _story(f: Mapping[str, Any]) -> list[RenderableType]:
    sentences = story_sentences(f)
    if not sentences:
        return []
    lines = [Text(f"{i:>3}. {safe(s, 400)}") for i, s in enumerate(sentences, start=1)]
    principals = f.get("principals") or []
    tail = Text.assemble(
        ("Principals: ", "dim"),
        (", ".join(safe(short_arn(str(p)), 120) for p in principals), ""),
        ("\nMember findings: ", "dim"),
        (", ".join(safe(m, 40) for m in f.get("members") or []) or "none (weak signals only)", ""),
    )
    return [_section("The story, step by step"), *lines, tail]


def finding_view(f: Mapping[str, Any], *, timeline_limit: int = 40) -> Group:
    """The whole finding as a short incident summary (``trailsight findings show``)."""
    parts: list[RenderableType] = [_header(f)]
    parts += _explanation(f)
    parts += _story(f)
    parts += _done(f)
    parts += _apis(f)
    parts += _unusual(f)
    parts += _networks(f)
    parts += _agents(f)
    parts += _timeline(f, timeline_limit)
    parts += _usual_apis(f)
    ids = f.get("event_ids") or []
    if ids:
        more = f" (+{len(ids) - 5} more)" if len(ids) > 5 else ""
        parts.append(Text.assemble(("\nEvent ids: ", "dim"), (", ".join(safe(i, 80) for i in ids[:5]) + more, "")))
    return Group(*parts)
