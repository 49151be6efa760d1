"""Where a store keeps its parts.

A store is one folder (``--store S``)::

    S/
      lake/account_id=<acct>/event_date=<YYYY-MM-DD>/<batch>.parquet   normalised events
      state.duckdb                                                     manifest, profiles, findings, feedback, runs
      quarantine/<run>.jsonl                                           records set aside, with file, offset and reason

Only Parquet files registered in the state database's ``lake_files`` table belong
to the lake; a file the database does not list (left by a killed run) is ignored
by readers and removed by the next ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside one store folder."""

    root: Path

    @property
    def lake(self) -> Path:
        """Folder of the Parquet lake."""
        return self.root / "lake"

    @property
    def state(self) -> Path:
        """The DuckDB state database file."""
        return self.root / "state.duckdb"

    @property
    def quarantine(self) -> Path:
        """Folder of quarantine files."""
        return self.root / "quarantine"

    def partition(self, account_id: str, event_date: str) -> Path:
        """Folder of one lake partition."""
        return self.lake / f"account_id={account_id}" / f"event_date={event_date}"
