"""The quarantine: records and files set aside, with where they came from and why.

Every entry is written twice: as one JSON line in ``S/quarantine/<run>.jsonl`` the moment
it is found, and as a row of the ``quarantine`` table in the state database, committed
with the batch it belongs to. Each line holds::

    {"run_id": "...", "source": "<file path or s3:// URI or ->",
     "location": "record 17" | "line 18" | "byte 5120" | "file",
     "reason": "missing eventTime", "snippet": "<first 200 characters>", "at": "<UTC ISO time>"}

``location`` is the record's index in the ``Records`` array (0-based), its line in a JSON
lines file (1-based), a byte offset for a break in the stream, or ``file`` for the whole
source. The snippet is raw CloudTrail text — attacker-controlled; escape it before showing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
import pyarrow as pa

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    location VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    snippet VARCHAR,
    "at" TIMESTAMPTZ NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One thing set aside: a record, a line, or a whole source."""

    source: str
    location: str
    reason: str
    snippet: str = ""

    def to_dict(self, run_id: str, at: datetime) -> dict[str, Any]:
        """The JSON-lines form."""
        return {
            "run_id": run_id,
            "source": self.source,
            "location": self.location,
            "reason": self.reason,
            "snippet": self.snippet,
            "at": at.isoformat(),
        }


class QuarantineWriter:
    """Appends entries to ``<folder>/<run_id>.jsonl``; the file is created on the first entry."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.path = folder / f"{run_id}.jsonl"
        self.run_id = run_id
        self.count = 0
        self._fh: IO[bytes] | None = None

    def write(self, entries: list[QuarantineEntry]) -> None:
        """Append ``entries`` and flush them to the file."""
        if not entries:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        now = datetime.now(UTC)
        self._fh.write(b"".join(orjson.dumps(e.to_dict(self.run_id, now)) + b"\n" for e in entries))
        self._fh.flush()
        self.count += len(entries)

    def close(self) -> None:
        """Close the file (if one was opened)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def insert_entries(con: duckdb.DuckDBPyConnection, run_id: str, entries: list[QuarantineEntry]) -> None:
    """Insert ``entries`` into the ``quarantine`` table (inside the caller's transaction)."""
    if not entries:
        return
    n = len(entries)
    rows = pa.table(
        {
            "run_id": pa.array([run_id] * n, pa.string()),
            "source": pa.array([e.source for e in entries], pa.string()),
            "location": pa.array([e.location for e in entries], pa.string()),
            "reason": pa.array([e.reason for e in entries], pa.string()),
            "snippet": pa.array([e.snippet for e in entries], pa.string()),
            "at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("_quarantine_rows", rows)
    try:
        con.execute("INSERT INTO quarantine SELECT * FROM _quarantine_rows")
    finally:
        con.unregister("_quarantine_rows")
