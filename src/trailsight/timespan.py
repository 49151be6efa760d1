"""Time ranges and time options: UTC days, and the one parser of ``--since`` / ``--until``.

Every command that takes a time (``detect``, ``ingest``, ``findings``, ``investigate`` ...)
reads it with :func:`parse_time`: an ISO 8601 date or date-time (UTC when it names no zone), or
a span back from now (``90s``, ``30m``, ``24h``, ``7d``, ``2w``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from trailsight.errors import ConfigError

_SPAN = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a time without a zone is refused (it would be read in the machine's zone)."""
    if value.tzinfo is None:
        raise ConfigError(f"time {value.isoformat()} has no time zone; give UTC times (…Z)")
    return value.astimezone(UTC)


def day_range(day: date) -> tuple[datetime, datetime]:
    """``[since, until)`` of one UTC day."""
    since = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return since, since + timedelta(days=1)


def parse_time(value: str | None, flag: str, *, now: datetime | None = None) -> datetime | None:
    """Parse a time option: an ISO date or date-time (UTC if no zone) or a span ago (``7d``, ``24h``).

    ``flag`` names the option in the error (``--since``); ``now`` is the clock spans count back
    from (default: the current time). None or an empty value gives None.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    span = _SPAN.match(text.lower())
    if span is not None:
        clock = now if now is not None else datetime.now(UTC)
        return utc(clock) - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} {value!r}: expected a date (2025-03-03), an ISO time (2025-03-03T12:00Z)"
            " or a span ago (7d, 24h, 30m)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


__all__ = ["day_range", "parse_time", "utc"]
