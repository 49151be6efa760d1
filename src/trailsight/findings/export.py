"""Exports of findings: JSON lines, OCSF 1.7 Detection Findings, ASFF for Security Hub, CSV.

``write_export(findings, fmt, stream)`` is the one entry point (``trailsight findings export
--format ...`` calls it). Formats:

``jsonl``  one :meth:`Finding.to_dict` per line (the same form the state database keeps).
``ocsf``   one OCSF 1.7.0 Detection Finding (class 2004) per line, each validated with
           ``pydantic-ocsf`` (:mod:`trailsight.findings.export_ocsf`).
``asff``   a JSON array of ASFF findings, checked against botocore's ``BatchImportFindings``
           shape — the file ``aws securityhub batch-import-findings --findings file://...``
           takes (at most 100 per call) (:mod:`trailsight.findings.export_asff`).
``csv``    one row per finding, formula-looking cells neutralised
           (:mod:`trailsight.findings.export_csv`). Open the stream with ``newline=""``.
``slack``  one Slack Block Kit message per line; ``teams`` one Teams Adaptive Card message.

The formats themselves are found by name in :mod:`trailsight.outputs.registry` (which also
serves ``watch --output``); this module keeps the function the CLI has always called.

ASFF needs a region for ``ProductArn``: ``region=`` or, when not given, ``$AWS_REGION`` /
``$AWS_DEFAULT_REGION``, else ``us-east-1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TextIO

from trailsight.finding import Finding
from trailsight.findings.export_asff import DEFAULT_REGION
from trailsight.outputs.formats import RenderContext, dumps

#: The built-in formats :func:`write_export` knows (plugins add more: :mod:`trailsight.outputs.registry`).
FORMATS: tuple[str, ...] = ("jsonl", "ocsf", "asff", "csv", "slack", "teams")


def _region(region: str | None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def write_export(
    findings: Iterable[Finding], fmt: str, stream: TextIO, *, region: str | None = None, ui_url: str | None = None
) -> int:
    """Write ``findings`` to ``stream`` in format ``fmt`` (any name in the outputs registry); return how many."""
    from trailsight.outputs.registry import get_format

    output = get_format(fmt, setting="findings export")
    return output.write(findings, stream, RenderContext(region=_region(region), ui_url=ui_url))


__all__ = ["FORMATS", "dumps", "write_export"]
