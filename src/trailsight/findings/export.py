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

ASFF needs a region for ``ProductArn``: ``region=`` or, when not given, ``$AWS_REGION`` /
``$AWS_DEFAULT_REGION``, else ``us-east-1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

from trailsight.errors import ConfigError
from trailsight.finding import Finding
from trailsight.findings.export_asff import DEFAULT_REGION, to_asff, validate_asff
from trailsight.findings.export_csv import write_csv
from trailsight.findings.export_ocsf import to_ocsf

#: Formats :func:`write_export` knows.
FORMATS: tuple[str, ...] = ("jsonl", "ocsf", "asff", "csv")


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``; strings with lone surrogates are written \\u-escaped."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        # orjson refuses lone surrogates (attacker-supplied CloudTrail text can hold them)
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _region(region: str | None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def write_export(findings: Iterable[Finding], fmt: str, stream: TextIO, *, region: str | None = None) -> int:
    """Write ``findings`` to ``stream`` in format ``fmt``; return how many were written."""
    if fmt == "jsonl":
        n = 0
        for f in findings:
            stream.write(dumps(f.to_dict()) + "\n")
            n += 1
        return n
    if fmt == "ocsf":
        n = 0
        for f in findings:
            stream.write(dumps(to_ocsf(f)) + "\n")
            n += 1
        return n
    if fmt == "asff":
        where = _region(region)
        items = [to_asff(f, region=where) for f in findings]
        validate_asff(items)
        stream.write("[\n")
        stream.write(",\n".join(dumps(item) for item in items))
        stream.write("\n]\n" if items else "]\n")
        return len(items)
    if fmt == "csv":
        return write_csv(findings, stream)
    raise ConfigError(f"findings export: unknown format {fmt!r} (choose one of {', '.join(FORMATS)})")


__all__ = ["FORMATS", "dumps", "write_export"]
