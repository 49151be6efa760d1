"""``trailsight findings``: list, show, triage (ack / dismiss / malicious / reopen) and export findings.

Readers open the state database read-only, so they work while ``serve`` or other readers run;
triage commands open it read-write for one short transaction.
"""

from __future__ import annotations

import importlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.console import Console

from trailsight.errors import ConfigError, StoreError, TrailsightError
from trailsight.finding import STATUSES
from trailsight.findings.render import finding_table, finding_view
from trailsight.store.findings import (
    count_findings,
    finding_from_dict,
    get_finding,
    list_findings,
    set_status,
    state_path,
)
from trailsight.timespan import parse_time

findings_app = typer.Typer(
    name="findings",
    help="List, read, triage and export the findings in a store.",
    no_args_is_help=True,
    add_completion=False,
)

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb).")]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Findings active at or after this time: ISO date/time (UTC) or 7d, 24h, 30m ago."),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Findings that started before this time (same forms).")]
SeverityOpt = Annotated[
    str | None, typer.Option("--severity", help="Severity labels, comma-separated (High,Medium,Low), or 'Medium+'.")
]
TacticOpt = Annotated[
    str | None, typer.Option("--tactic", help="Tactics, comma-separated (Persistence,Discovery); 'none' = no tactic.")
]
PrincipalOpt = Annotated[str | None, typer.Option("--principal", help="Principal/actor ARN or its name (alice).")]
AccountOpt = Annotated[str | None, typer.Option("--account", help="AWS account id.")]
StatusOpt = Annotated[
    str | None,
    typer.Option(
        "--status", help="Statuses, comma-separated (Open,Acknowledged,Dismissed,Malicious,Suppressed), or all."
    ),
]
ConfidenceOpt = Annotated[str | None, typer.Option("--confidence", help="Confidence labels, comma-separated.")]


class ListFormat(StrEnum):
    """Output formats of ``findings list``."""

    table = "table"
    jsonl = "jsonl"


def _severity(value: str | None) -> list[str] | None:
    if value is None:
        return None
    text = value.strip()
    order = ["Low", "Medium", "High"]
    if text.endswith("+"):
        base = text[:-1].strip().capitalize()
        if base not in order:
            raise ConfigError(f"--severity {value!r}: expected Low, Medium or High (optionally with +)")
        return order[order.index(base) :]
    labels = [v.strip().capitalize() for v in text.split(",") if v.strip()]
    bad = [v for v in labels if v not in order]
    if bad:
        raise ConfigError(f"--severity {value!r}: unknown label {bad[0]!r}; expected Low, Medium, High")
    return labels


def _status(value: str | None) -> list[str] | None:
    """``--status``: ``all`` (no filter) or statuses, comma-separated, any case; anything else is an error."""
    if value is None or value.strip().lower() == "all":
        return None
    known = {s.lower(): s for s in STATUSES}
    wanted = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in wanted if v.lower() not in known]
    if bad or not wanted:
        raise ConfigError(
            f"--status {value!r}: unknown status {(bad or [value])[0]!r}; expected all or {', '.join(STATUSES)}"
        )
    return [known[v.lower()] for v in wanted]


def _console(stream: IO[str] | None = None) -> Console:
    # Wide enough for the tables when piped; rich detects a real terminal's width itself.
    return Console(file=stream or sys.stdout, width=None if sys.stdout.isatty() else 140, soft_wrap=False)


def _require_state(store: Path) -> None:
    if not state_path(store).is_file():
        raise StoreError(f"{store}: no state database (run `trailsight ingest` and `trailsight detect` first)")


def _filters(
    since: str | None,
    until: str | None,
    severity: str | None,
    tactic: str | None,
    principal: str | None,
    account: str | None,
    status: str | None,
    confidence: str | None,
) -> dict[str, Any]:
    return {
        "since": parse_time(since, "--since"),
        "until": parse_time(until, "--until"),
        "severity": _severity(severity),
        "tactic": tactic,
        "principal": principal,
        "account": account,
        "status": _status(status),
        "confidence": confidence,
    }


@findings_app.command("list")
def list_command(
    store: StoreOpt,
    since: SinceOpt = None,
    until: UntilOpt = None,
    severity: SeverityOpt = None,
    tactic: TacticOpt = None,
    principal: PrincipalOpt = None,
    account: AccountOpt = None,
    status: StatusOpt = None,
    confidence: ConfidenceOpt = None,
    order: Annotated[
        str, typer.Option("--order", help="risk | severity | score | time | first_seen (default risk).")
    ] = "risk",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many findings.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many first.")] = 0,
    fmt: Annotated[ListFormat, typer.Option("--format", "-f", help="table (default) or jsonl.")] = ListFormat.table,
) -> None:
    """List findings, riskiest first."""
    _require_state(store)
    filters = _filters(since, until, severity, tactic, principal, account, status, confidence)
    if order not in {"risk", "severity", "score", "time", "last_seen", "first_seen", "oldest"}:
        raise ConfigError(f"--order {order!r}: expected risk, severity, score, time or first_seen")
    rows = list_findings(store, **filters, order_by=order, limit=limit, offset=offset)
    if fmt is ListFormat.jsonl:
        out = sys.stdout.buffer
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
        out.flush()
        return
    total = count_findings(store, **filters)
    console = _console()
    if not rows:
        console.print("No findings match." if total == 0 else f"No findings at offset {offset} (of {total}).")
        return
    console.print(finding_table(rows, total=total))


@findings_app.command("show")
def show_command(
    finding_id: Annotated[str, typer.Argument(help="Finding id (or a unique prefix of 6+ characters).")],
    store: StoreOpt,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text (default) or json.")] = "text",
    timeline: Annotated[int, typer.Option("--timeline", min=2, help="Timeline rows shown at most.")] = 40,
) -> None:
    """Show one finding as a short incident summary."""
    _require_state(store)
    finding = get_finding(store, finding_id)
    if finding is None:
        raise StoreError(f"finding {finding_id!r}: not in {state_path(store)}")
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(finding, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
        return
    if fmt != "text":
        raise ConfigError(f"--format {fmt!r}: expected text or json")
    _console().print(finding_view(finding, timeline_limit=timeline))


def _triage(status: str, verb: str) -> Any:
    def command(
        finding_id: Annotated[str, typer.Argument(help="Finding id (or a unique prefix of 6+ characters).")],
        store: StoreOpt,
        reason: Annotated[str, typer.Option("--reason", "-r", help="Why (kept with the feedback).")],
    ) -> None:
        _require_state(store)
        finding = get_finding(store, finding_id)
        if finding is None:
            raise StoreError(f"finding {finding_id!r}: not in {state_path(store)}")
        set_status(store, str(finding["id"]), status, reason)
        typer.echo(f"{finding['id']}: {finding.get('status')} -> {status}")

    command.__doc__ = verb
    return command


findings_app.command("ack")(
    _triage("Acknowledged", "Acknowledge a finding (being looked at); detection re-runs keep the status.")
)
findings_app.command("dismiss")(
    _triage(
        "Dismissed",
        "Dismiss a finding as benign: the same pattern (principal + its APIs and networks) is not raised again.",
    )
)
findings_app.command("malicious")(_triage("Malicious", "Mark a finding as confirmed malicious."))
findings_app.command("reopen")(_triage("Open", "Reopen a finding (undoes ack / dismiss / malicious)."))


@findings_app.command("export")
def export_command(
    store: StoreOpt,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="jsonl | ocsf | asff | csv | slack | teams (or a plugin's format)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (default stdout), or an output: securityhub[:REGION], sns:ARN, eventbridge[:BUS], "
            "webhook:URL, slack:URL, teams:URL (see docs/export.md).",
        ),
    ] = None,
    ui_url: Annotated[
        str | None, typer.Option("--ui-url", help="Base URL of 'trailsight serve' for links in Slack/Teams messages.")
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    severity: SeverityOpt = None,
    tactic: TacticOpt = None,
    principal: PrincipalOpt = None,
    account: AccountOpt = None,
    status: StatusOpt = None,
    confidence: ConfidenceOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="At most this many (default all).")] = None,
) -> None:
    """Export findings as JSON lines, OCSF, ASFF, CSV, Slack or Teams messages — to a file or an output."""
    from trailsight.outputs.registry import available, get_format, split_spec

    _require_state(store)
    registry = available()
    if fmt is not None:
        get_format(fmt, registry, setting="--format")
    filters = _filters(since, until, severity, tactic, principal, account, status, confidence)
    destination, target, options = split_spec(output, registry) if output else ("stdout", "", {})
    if output and destination not in ("stdout", "file") and destination in registry.destinations:
        _export_to_output(store, output, fmt, ui_url, filters, limit)
        return
    if output and destination == "file":  # file:PATH?format=... is the same as -o PATH -f ...
        output, fmt = target, fmt or options.get("format")
    rows = list_findings(store, **filters, order_by="first_seen", limit=limit)
    findings = [finding_from_dict(r) for r in rows]
    try:
        # Imported by name: the exporters are another part (trailsight.findings.export).
        write_export = importlib.import_module("trailsight.findings.export").write_export
    except (ImportError, AttributeError) as exc:
        raise TrailsightError(f"findings export: exporters not available ({exc})") from None
    name = fmt or "jsonl"
    if output is None:
        write_export(findings, name, sys.stdout, ui_url=ui_url)
        sys.stdout.flush()
    else:
        path = Path(output)
        try:
            with path.open("w", encoding="utf-8", newline="") as stream:
                write_export(findings, name, stream, ui_url=ui_url)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
        typer.echo(f"wrote {len(findings)} findings to {path} ({name})", err=True)


def _export_to_output(
    store: Path, spec: str, fmt: str | None, ui_url: str | None, filters: dict[str, Any], limit: int | None
) -> None:
    """Send the selected findings to a network output (Security Hub, SNS, a webhook ...)."""
    from datetime import UTC, datetime

    from trailsight.outputs.base import Alert
    from trailsight.outputs.registry import OutputDefaults, parse_output

    if fmt is not None and "format=" not in spec:
        spec = spec + ("&" if "?" in spec else "?") + f"format={fmt}"
    sink = parse_output(spec, defaults=OutputDefaults(ui_url=ui_url))
    rows = list_findings(store, **filters, order_by="first_seen", limit=limit)
    now = datetime.now(UTC)
    run_id = f"export-{now.strftime('%Y%m%dT%H%M%SZ')}"
    alerts = [
        Alert(
            finding_id=str(row["id"]),
            action="export",
            event_count=int(row.get("count") or 0),
            previous_count=0,
            run_id=run_id,
            raised_at=now,
            finding=finding_from_dict(row).to_dict(),
        )
        for row in rows
    ]
    try:
        result = sink.send(alerts)
    finally:
        sink.close()
    typer.echo(f"sent {len(result.delivered)} of {len(alerts)} findings to {sink.name}", err=True)
    if result.failed:
        alert, error = result.failed[0]
        raise TrailsightError(
            f"{sink.name}: {len(result.failed)} findings not delivered; first: {alert.finding_id}: {error}"
        )


def register(app: typer.Typer) -> None:
    """Add the ``findings`` command group to the CLI."""
    app.add_typer(findings_app, name="findings")
