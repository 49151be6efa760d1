"""Watch alerts built from real findings, for the output tests (imported by name: tests/ is on the path)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from trailsight.finding import Finding
from trailsight.outputs.base import Alert
from trailsight.store.findings import finding_from_dict

GOLDEN = Path(__file__).parent / "findings" / "test_export_stratus.jsonl"
RAISED = datetime(2023, 7, 10, 12, 40, tzinfo=UTC)


def golden() -> list[Finding]:
    """The two real findings of the Stratus capture (see tests/findings/test_export_formats.py)."""
    return [finding_from_dict(orjson.loads(line)) for line in GOLDEN.read_bytes().splitlines() if line.strip()]


def as_alert(f: Finding, *, action: str = "new", previous: int = 0, at: datetime = RAISED) -> Alert:
    """A watch alert carrying ``f``."""
    return Alert(
        finding_id=f.id,
        action=action,
        event_count=f.count,
        previous_count=previous,
        run_id="watch-test",
        raised_at=at,
        finding=f.to_dict(),
    )


def many(n: int, *, severity_label: str | None = None, big: bool = False) -> list[Alert]:
    """``n`` alerts with distinct finding ids, copies of the small golden finding (6 KB) or the big one (140 KB)."""
    base = golden()[0 if big else 1]
    out = []
    for i in range(n):
        f = replace(base, id=f"ts-{i:06d}", severity_label=severity_label or base.severity_label)
        out.append(as_alert(f))
    return out
