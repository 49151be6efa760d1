"""Compare two findings files (JSON lines from ``trailsight detect --format jsonl``).

Behaviour is unchanged when both files hold the same findings: the same ids, and for each id
the same score, severity, confidence and event ids. Prints one line per difference and a
summary; exits 1 when the files differ.

    python bench/compare_findings.py before.jsonl after.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: The fields a change of behaviour would show in.
COMPARED = (
    "score",
    "risk_score",
    "severity",
    "confidence",
    "gated",
    "principal",
    "first_seen",
    "last_seen",
    "event_ids",
)


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The findings of a JSON lines file by id."""
    out: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{number}: not JSON ({exc.msg})") from None
        out[str(record["id"])] = record
    return out


def differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """One line per finding missing on either side or per compared field that differs."""
    lines = [f"only in before: {i}" for i in sorted(before.keys() - after.keys())]
    lines += [f"only in after: {i}" for i in sorted(after.keys() - before.keys())]
    for i in sorted(before.keys() & after.keys()):
        for name in COMPARED:
            if before[i].get(name) != after[i].get(name):
                lines.append(f"{i} {name}: {before[i].get(name)!r} != {after[i].get(name)!r}")
    if not lines and list(before) != list(after):
        lines.append("same findings in a different order")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Compare the two files; 0 when identical in the compared fields, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before, after = load(args.before), load(args.after)
    lines = differences(before, after)
    for line in lines:
        print(line)
    verdict = "identical" if not lines else f"{len(lines)} difference(s)"
    print(f"before {len(before)} findings, after {len(after)}: {verdict}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
