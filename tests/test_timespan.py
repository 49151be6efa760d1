"""The one time-option parser (--since / --until everywhere) and UTC days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailsight.errors import ConfigError
from trailsight.timespan import day_range, parse_time, utc

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-03", datetime(2025, 3, 3, tzinfo=UTC)),
        ("2025-03-03T12:30", datetime(2025, 3, 3, 12, 30, tzinfo=UTC)),
        ("2025-03-03T12:30:00Z", datetime(2025, 3, 3, 12, 30, tzinfo=UTC)),
        ("2025-03-03T14:30+02:00", datetime(2025, 3, 3, 12, 30, tzinfo=UTC)),
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("30m", NOW - timedelta(minutes=30)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2w", NOW - timedelta(weeks=2)),
        (" 7D ", NOW - timedelta(days=7)),
    ],
)
def test_parses_dates_times_and_spans(text: str, expected: datetime) -> None:
    got = parse_time(text, "--since", now=NOW)
    assert got == expected
    assert got is not None
    assert got.tzinfo == UTC


@pytest.mark.parametrize("text", [None, "", "   "])
def test_nothing_gives_none(text: str | None) -> None:
    assert parse_time(text, "--since") is None


@pytest.mark.parametrize("text", ["yesterday", "7y", "2025-13-01", "-7d"])
def test_a_bad_value_names_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--until '.*': expected a date"):
        parse_time(text, "--until", now=NOW)


@given(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))  # noqa: DTZ001 - bounds are naive
def test_an_iso_time_round_trips(value: datetime) -> None:
    assert parse_time(value.isoformat(), "--since") == value


def test_a_time_without_zone_is_refused_by_utc() -> None:
    with pytest.raises(ConfigError, match="no time zone"):
        utc(datetime(2025, 3, 3))  # noqa: DTZ001 - the naive time is the point
    assert utc(datetime(2025, 3, 3, 1, tzinfo=timezone(timedelta(hours=1)))) == datetime(2025, 3, 3, tzinfo=UTC)


def test_day_range_is_one_utc_day() -> None:
    assert day_range(date(2025, 3, 3)) == (datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC))
