"""Open a store's lake for pivots: an in-memory DuckDB connection with an ``events`` view."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from trailsight.errors import StoreError
from trailsight.store import lake
from trailsight.store.layout import StoreLayout

__all__ = ["fetch_rows", "iso", "iso_fields", "open_lake", "to_time"]


@contextmanager
def open_lake(
    store: Path | str | StoreLayout, since: datetime | None = None, until: datetime | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a DuckDB connection where ``events`` is the store's lake (optionally ``[since, until)``).

    Only the lake's registered files are read; the state database is opened read-only for a moment.
    """
    layout = store if isinstance(store, StoreLayout) else StoreLayout(Path(store))
    if not layout.state.is_file():
        raise StoreError(f"{layout.root}: not a trailsight store (no state.duckdb); run `trailsight ingest` first")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        lake.open_events(con, layout, since, until).create_view("events")
        yield con
    finally:
        con.close()


def to_time(micros: Any) -> datetime | None:
    """A UTC datetime from epoch microseconds (DuckDB ``epoch_us``), or None."""
    if micros is None:
        return None
    return datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)


def iso(micros: Any) -> str | None:
    """ISO 8601 UTC text (``...Z``) from epoch microseconds, or None."""
    value = to_time(micros)
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def iso_fields(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``row`` with its epoch-microsecond ``keys`` turned into ISO 8601 UTC text (in place; absent keys skipped)."""
    for key in keys:
        if key in row:
            row[key] = iso(row[key])
    return row


def fetch_rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """The rows of ``sql`` (``?`` parameters) as dicts keyed by column name."""
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
