"""Output formats: how a finding (or a watch alert) is written, whatever the destination.

A format turns one finding into one *payload* — a JSON value, or a text line for CSV — and
knows how to write a whole export to a stream (``findings export``). The same objects serve
``watch``: each sink renders its alerts with its format. Built-ins:

``jsonl``  the watch alert (``{"type": "trailsight.finding", "action", "alert_key", ...,
           "finding": {...}}``) for watch; :meth:`Finding.to_dict` per line for export.
``ocsf``   an OCSF 1.7.0 Detection Finding; a watch ``update`` is activity 2 (Update).
``asff``   an ASFF finding for Security Hub (``UpdatedAt`` = when the alert was raised, so a
           re-raise updates the finding in place); export writes a JSON array.
``csv``    one row (export writes the header first; a watch file gets it when it is new).
``slack``  a Slack Block Kit message (:mod:`trailsight.outputs.chat`).
``teams``  a Microsoft Teams Adaptive Card message.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TextIO

from trailsight.finding import Finding
from trailsight.findings.export_asff import DEFAULT_REGION, to_asff, validate_asff
from trailsight.findings.export_csv import CSV_COLUMNS, finding_row
from trailsight.findings.export_ocsf import to_ocsf
from trailsight.outputs.base import Alert
from trailsight.outputs.chat import slack_message, teams_message


@dataclass(frozen=True, kw_only=True)
class RenderContext:
    """What formats may need besides the finding: the ASFF region, the web UI's address."""

    region: str | None = None
    ui_url: str | None = None

    @property
    def aws_region(self) -> str:
        """``region``, else ``$AWS_REGION`` / ``$AWS_DEFAULT_REGION``, else us-east-1."""
        return self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def alert_finding(alert: Alert) -> Finding:
    """The :class:`Finding` an alert carries."""
    from trailsight.store.findings import finding_from_dict

    return finding_from_dict(dict(alert.finding))


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``; strings with lone surrogates are written \\u-escaped."""
    import json

    import orjson

    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        # orjson refuses lone surrogates (attacker-supplied CloudTrail text can hold them)
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


class OutputFormat:
    """One way of writing findings. Subclasses set ``name`` and override :meth:`render_finding`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: HTTP Content-Type of one payload.
    content_type: ClassVar[str] = "application/json"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """The payload for ``finding``: a JSON value, or a ``str`` written as it is."""
        raise NotImplementedError

    def render(self, alert: Alert, ctx: RenderContext) -> Any:
        """The payload for a watch alert (by default the alert's finding, rendered)."""
        return self.render_finding(alert_finding(alert), ctx, action=alert.action, at=alert.raised_at)

    def header(self) -> str | None:
        """Text written once before the first payload of a new file (CSV's header row)."""
        return None

    def encode(self, payload: Any) -> bytes:
        """``payload`` as bytes: text as it is, anything else as compact JSON."""
        return payload.encode("utf-8") if isinstance(payload, str) else dumps(payload).encode("utf-8")

    def line(self, payload: Any) -> bytes:
        """``payload`` as one line of a file or stream."""
        data = self.encode(payload)
        return data if data.endswith(b"\n") else data + b"\n"

    def write(self, findings: Iterable[Finding], stream: TextIO, ctx: RenderContext) -> int:
        """Write an export of ``findings`` to ``stream``: by default one payload per line."""
        head = self.header()
        if head is not None:
            stream.write(head)
        n = 0
        for finding in findings:
            stream.write(self.line(self.render_finding(finding, ctx)).decode("utf-8"))
            n += 1
        return n


class JsonlFormat(OutputFormat):
    """The finding's JSON (export) or the whole watch alert (watch), one per line."""

    name = "jsonl"
    description = "JSON lines: the finding (export) or the watch alert with its finding (watch)"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """:meth:`Finding.to_dict`."""
        return finding.to_dict()

    def render(self, alert: Alert, ctx: RenderContext) -> Any:
        """:meth:`Alert.to_dict` (the alert envelope, with ``alert_key`` for de-duplication)."""
        return alert.to_dict()


class OcsfFormat(OutputFormat):
    """OCSF 1.7.0 Detection Finding (class 2004)."""

    name = "ocsf"
    description = "OCSF 1.7.0 Detection Finding (class 2004), one per line"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """:func:`~trailsight.findings.export_ocsf.to_ocsf`; an update is activity 2 (Update)."""
        data = to_ocsf(finding)
        if action == "update":
            data["activity_id"] = 2
            data["activity_name"] = "Update"
            data["type_uid"] = data["class_uid"] * 100 + 2
            data["type_name"] = "Detection Finding: Update"
        return data


class AsffFormat(OutputFormat):
    """AWS Security Finding Format (Security Hub)."""

    name = "asff"
    description = "AWS Security Finding Format: a JSON array (export) or one finding per payload (watch)"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """:func:`~trailsight.findings.export_asff.to_asff` (``UpdatedAt`` = ``at``)."""
        return to_asff(finding, region=ctx.aws_region, now=at)

    def write(self, findings: Iterable[Finding], stream: TextIO, ctx: RenderContext) -> int:
        """A JSON array checked against ``BatchImportFindings`` (the file the AWS CLI takes)."""
        items = [self.render_finding(f, ctx) for f in findings]
        validate_asff(items)
        stream.write("[\n")
        stream.write(",\n".join(dumps(item) for item in items))
        stream.write("\n]\n" if items else "]\n")
        return len(items)


class CsvFormat(OutputFormat):
    """One CSV row per finding, formula-looking cells neutralised."""

    name = "csv"
    description = "CSV, one row per finding (header first), spreadsheet formulas neutralised"
    content_type = "text/csv"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """The row as CSV text ending in CRLF."""
        return _csv_text(finding_row(finding))

    def header(self) -> str | None:
        """The column names."""
        return _csv_text(list(CSV_COLUMNS))

    def line(self, payload: Any) -> bytes:
        """The row as it is (it ends in CRLF; quoted cells may hold newlines)."""
        return self.encode(payload)


class SlackFormat(OutputFormat):
    """A Slack incoming-webhook message (Block Kit)."""

    name = "slack"
    description = "Slack Block Kit message (incoming webhook)"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """:func:`~trailsight.outputs.chat.slack_message`."""
        return slack_message(finding, action=action, ui_url=ctx.ui_url)


class TeamsFormat(OutputFormat):
    """A Microsoft Teams incoming-webhook message (Adaptive Card)."""

    name = "teams"
    description = "Microsoft Teams Adaptive Card message (incoming webhook / Workflows)"

    def render_finding(
        self, finding: Finding, ctx: RenderContext, *, action: str = "new", at: datetime | None = None
    ) -> Any:
        """:func:`~trailsight.outputs.chat.teams_message`."""
        return teams_message(finding, action=action, ui_url=ctx.ui_url)


def _csv_text(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


#: The built-in formats, by name.
BUILTIN_FORMATS: dict[str, type[OutputFormat]] = {
    cls.name: cls for cls in (JsonlFormat, OcsfFormat, AsffFormat, CsvFormat, SlackFormat, TeamsFormat)
}

__all__ = [
    "BUILTIN_FORMATS",
    "AsffFormat",
    "CsvFormat",
    "JsonlFormat",
    "OcsfFormat",
    "OutputFormat",
    "RenderContext",
    "SlackFormat",
    "TeamsFormat",
    "alert_finding",
    "dumps",
]
