"""Next steps for a finding, written once per kind in ``next_steps.csv`` beside this module.

A finding's steps are those of its effects' kinds (:mod:`trailsight.enrich.effects`), in the
order the effects came, then those of its ATT&CK tactic, then the steps every finding gets;
repeats are dropped and the list is capped at :data:`MAX_STEPS`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from functools import cache
from importlib import resources

from trailsight.errors import ConfigError

STEPS_FILE = "next_steps.csv"
STEPS_COLUMNS = ("key", "step")
MAX_STEPS = 6


@cache
def load_steps() -> dict[str, tuple[str, ...]]:
    """``next_steps.csv``: key (effect kind, ``tactic:<Tactic>`` or ``any``) → its steps in order."""
    text = resources.files(__package__).joinpath(STEPS_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    if tuple(reader.fieldnames or ()) != STEPS_COLUMNS:
        raise ConfigError(f"{STEPS_FILE}: header must be {','.join(STEPS_COLUMNS)}")
    steps: dict[str, list[str]] = {}
    for row in reader:
        if None in row or not row["key"] or not row["step"]:  # None: a step with an unquoted comma
            raise ConfigError(f"{STEPS_FILE}: a row without key or step: {row!r}")
        steps.setdefault(row["key"], []).append(row["step"])
    return {k: tuple(v) for k, v in steps.items()}


def next_steps(effect_kinds: Iterable[str], tactic: str | None) -> list[str]:
    """The steps for a finding with these effect kinds and this tactic (see the module docstring)."""
    table = load_steps()
    keys = [*dict.fromkeys(effect_kinds), *([f"tactic:{tactic}"] if tactic else []), "any"]
    out: dict[str, None] = {}
    for key in keys:
        for step in table.get(key, ()):
            out.setdefault(step, None)
    return list(out)[:MAX_STEPS]


__all__ = ["MAX_STEPS", "load_steps", "next_steps"]
