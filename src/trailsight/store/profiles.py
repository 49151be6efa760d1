"""The store's cache of daily profile tables (``profiles.duckdb``), so a run builds only new days.

Detection reduces every lake day of its history to small daily tables
(:mod:`trailsight.features.daily`). Those depend only on the day's lake files, so each complete
day is kept here with a fingerprint of its files (names and sizes), the definition's version and
the pairs a run's detectors need (only those are built, see :func:`~trailsight.features.daily.daily_schemas`):
the next run — ``trailsight watch`` every 15 minutes, or another ``detect`` — reads them back
instead of the day's events, and rebuilds a day only when ingest added files to it. Days that
fall out of the forget window of the newest day are aged out when a day is added.

The cache is an optimisation: when its file is locked by another run or cannot be written, a
run goes on without it and builds every day itself (the figures are the same).
"""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa

from trailsight.store.layout import StoreLayout

FILE_NAME = "profiles.duckdb"


def fingerprint(files: Sequence[Path], version: int, tables: Sequence[str] = ()) -> str:
    """A digest of a day's lake files (names and sizes), the daily tables' version and which
    tables (``tables``: their names; a day built with other tables is built again)."""
    digest = hashlib.sha256(f"v{version}".encode())
    if tables:
        digest.update(("\n" + ",".join(sorted(tables))).encode())
    for path in sorted(files):
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        digest.update(f"\n{path.name}\t{size}".encode())
    return digest.hexdigest()[:32]


class ProfileCache:
    """Daily tables by day, in ``<store>/profiles.duckdb``; use as a context manager."""

    def __init__(self, layout: StoreLayout) -> None:
        self.path = layout.root / FILE_NAME
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> ProfileCache:
        try:
            self._con = duckdb.connect(str(self.path))
            self._con.execute("CREATE TABLE IF NOT EXISTS days(day DATE PRIMARY KEY, fingerprint VARCHAR)")
        except (duckdb.Error, OSError):
            self._con = None  # locked by another run, or a read-only store: go on without it
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def cached(self, days: Mapping[date, str]) -> set[date]:
        """Those of ``days`` (day → fingerprint) held with the same fingerprint."""
        if self._con is None or not days:
            return set()
        rows = self._con.execute("SELECT day, fingerprint FROM days").fetchall()
        held = {day: fp for day, fp in rows}
        return {day for day, fp in days.items() if held.get(day) == fp}

    def matches(self, schemas: Mapping[str, pa.Schema]) -> bool:
        """Whether every stored table named in ``schemas`` has that schema's columns (in order)."""
        if self._con is None:
            return False
        return not any(self._differs(name, [*schema.names, "_cache_day"]) for name, schema in schemas.items())

    def load(self, schemas: Mapping[str, pa.Schema], days: set[date]) -> dict[str, pa.Table] | None:
        """The cached rows of ``days`` for each daily table named in ``schemas``, cast to its schema.

        Tables never stored (no rows on any cached day) are left out; None when a stored table
        does not have the schema's columns (then nothing of the cache can be trusted).
        """
        out: dict[str, pa.Table] = {}
        if self._con is None or not days:
            return out
        tables = self._tables()
        wanted = ", ".join(f"DATE '{day.isoformat()}'" for day in sorted(days))
        for name, schema in schemas.items():
            if f"t_{name}" not in tables:
                continue
            table = self._con.sql(
                f'SELECT * EXCLUDE (_cache_day) FROM "t_{name}" WHERE _cache_day IN ({wanted})'
            ).to_arrow_table()
            if table.column_names != schema.names:
                return None
            out[name] = table.cast(schema)
        return out

    def store_from(
        self, days: queue.Queue[tuple[date, str, Mapping[str, pa.Table]] | None], forget_days: int, batch: int = 8
    ) -> None:
        """:meth:`store` the days put on ``days`` as they come, ``batch`` days a transaction, until None.

        The queue is always drained, so whoever fills it never waits on a writer that failed.
        """
        failed, waiting = False, []
        while True:
            item = days.get()
            if item is not None and not failed:
                waiting.append(item)
            if waiting and (item is None or len(waiting) >= batch) and not failed:
                try:
                    self.store(waiting, forget_days)
                except Exception:  # the cache is an optimisation: the run goes on without it
                    failed = True
                waiting = []
            if item is None:
                return

    def store(self, days: Sequence[tuple[date, str, Mapping[str, pa.Table]]], forget_days: int) -> None:
        """Keep the daily tables of ``days`` ((day, fingerprint, tables) each) in one transaction.

        Days more than ``forget_days`` + 1 before the newest held day are aged out.
        """
        if self._con is None or not days:
            return
        con = self._con
        by_name: dict[str, list[pa.Table]] = {}
        for day, _, tables in days:
            for name, table in tables.items():
                stamp = pa.array([day] * table.num_rows, pa.date32())
                by_name.setdefault(name, []).append(table.append_column("_cache_day", stamp))
        try:
            con.execute("BEGIN")
            if self._changed_shape(by_name):
                self._clear()  # the daily tables' definition changed: start the cache afresh
            self._drop_days("IN (SELECT unnest(?::DATE[]))", [[day for day, _, _ in days]])
            for name, parts in by_name.items():
                con.register("_ts_in", pa.concat_tables(parts))
                con.execute(f'CREATE TABLE IF NOT EXISTS "t_{name}" AS SELECT * FROM _ts_in LIMIT 0')
                con.execute(f'INSERT INTO "t_{name}" BY NAME SELECT * FROM _ts_in')
                con.unregister("_ts_in")
            con.executemany("INSERT INTO days VALUES (?, ?)", [[day, fp] for day, fp, _ in days])
            newest = con.execute("SELECT max(day) FROM days").fetchall()[0][0]
            self._drop_days("< ?", [newest - timedelta(days=forget_days + 1)])
            con.execute("COMMIT")
        except duckdb.Error:
            con.execute("ROLLBACK")
            self._con = None  # a failed write: this run goes on without the cache

    def _changed_shape(self, by_name: Mapping[str, list[pa.Table]]) -> bool:
        """Whether a stored table's columns differ from the ones about to be added."""
        return any(self._differs(name, parts[0].column_names) for name, parts in by_name.items())

    def _differs(self, name: str, columns: Sequence[str]) -> bool:
        """Whether daily table ``name`` is stored with columns other than ``columns`` (not stored: False)."""
        assert self._con is not None
        rows = self._con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [f"t_{name}"]
        ).fetchall()
        return bool(rows) and [r[0] for r in rows] != list(columns)

    def _tables(self) -> set[str]:
        """The names of the daily tables held (``t_<name>``)."""
        assert self._con is not None
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 't\\_%' ESCAPE '\\'"
        ).fetchall()
        return {row[0] for row in rows}

    def _clear(self) -> None:
        assert self._con is not None
        for name in self._tables():
            self._con.execute(f'DROP TABLE "{name}"')
        self._con.execute("DELETE FROM days")

    def _drop_days(self, condition: str, params: list[object]) -> None:
        """Forget the days whose date matches ``condition`` (SQL after the column, with ``params``)."""
        assert self._con is not None
        for name in self._tables():
            self._con.execute(f'DELETE FROM "{name}" WHERE _cache_day {condition}', params)
        self._con.execute(f"DELETE FROM days WHERE day {condition}", params)


__all__ = ["FILE_NAME", "ProfileCache", "fingerprint"]
