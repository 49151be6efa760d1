"""One source → normalised rows and quarantine entries: the per-file step of ingest.

:func:`read_source` reads one :class:`~trailsight.ingest.sources.SourceFile` (local file,
S3 object or stdin), parses it (:mod:`~trailsight.ingest.parse`), normalises every record
(:mod:`~trailsight.ingest.normalise`) and applies the record filters of a
:class:`~trailsight.ingest.sources.PathFilter`. It yields normalised rows and
:class:`~trailsight.ingest.quarantine.QuarantineEntry` items and never raises on bad input:
a record that cannot be parsed or normalised, or a source that cannot be read, becomes an
entry. The ingest pipeline (:mod:`~trailsight.ingest.pipeline`) and the Spark reader of raw
CloudTrail (:mod:`trailsight.engines.spark_cloudtrail`) both call it, so the two cannot drift.

:func:`enrich` adds the enrichment columns to a table of rows (:func:`~trailsight.ingest.normalise.rows_to_table`)
and never loses a row to an enrichment failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Final

import orjson
import pyarrow as pa

from trailsight.ingest import normalise as norm
from trailsight.ingest.parse import DEFAULT_LIMITS, Document, Item, Limits, Problem, iter_records, snippet
from trailsight.ingest.quarantine import QuarantineEntry
from trailsight.ingest.sources import PathFilter, SourceFile, read_blocks
from trailsight.schema import EVENT_COLUMNS, EVENT_SCHEMA

#: Rows turned into an Arrow table at a time (a row keeps its parsed record's memory alive).
ROWS_PER_TABLE: Final = 4096


@dataclass(slots=True)
class SourceCounts:
    """What reading one source found: ``records`` parsed, ``quarantined`` set aside, ``filtered`` out.

    ``complete`` is False when the read itself failed part-way (the source should be retried).
    """

    records: int = 0
    quarantined: int = 0
    filtered: int = 0
    complete: bool = True


def micros(stamp: datetime) -> int:
    """Microseconds since the epoch of ``stamp`` (UTC when naive)."""
    aware = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1_000_000)


def location(unit: str, offset: int) -> str:
    """A record's location as the quarantine writes it (``record 17``, ``line 18``)."""
    return f"{unit} {offset}"


def record_snippet(record: object) -> str:
    """The start of a record's JSON text (its repr when it cannot be encoded)."""
    try:
        return snippet(orjson.dumps(record))
    except Exception:
        return snippet(repr(record))


def read_source(
    src: SourceFile,
    filters: PathFilter,
    counts: SourceCounts,
    *,
    s3_client: Callable[[], Any] | None = None,
    stdin: BinaryIO | None = None,
    sink: norm.FastRows | None = None,
    tag: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[norm.Row | QuarantineEntry]:
    """Yield the normalised rows of ``src`` that pass ``filters``, and a quarantine entry per problem.

    With a ``sink``, the records of a compact delivery file that the columnar path can take go
    into it (with ``tag``) instead of coming out as rows: the caller turns the sink into a table
    (:meth:`~trailsight.ingest.normalise.FastRows.table`). ``counts`` is filled in as it goes.
    Never raises on bad input or an unreadable source.
    """
    bounds: norm.Bounds = (
        micros(filters.since) if filters.since else None,
        micros(filters.until) if filters.until else None,
        filters.accounts,
        filters.regions,
    )
    check = bool(filters.active)
    normalise_row = norm.normalise_row
    Rejection = norm.Rejection
    display = src.key
    default_account = src.account
    unit = "line"

    def parsed(items: Iterator[Item | Document]) -> Iterator[Item]:
        """Records for the row path: the parser's, less what the sink takes of a compact file."""
        for item in items:
            if type(item) is not Document:
                yield item  # type: ignore[misc]
                continue
            assert sink is not None
            texts = item.texts
            slow, filtered = sink.add(texts, display, default_account, bounds, tag)
            counts.records += len(texts) - len(slow)
            counts.filtered += filtered
            for i in slow:
                text = bytes(texts[i])
                try:
                    yield i, orjson.loads(text), "record", text
                except orjson.JSONDecodeError as exc:  # one record's problem never costs the file
                    yield Problem(location("record", i), f"invalid JSON: {exc}", snippet(text))

    try:
        blocks = read_blocks(src, s3_client=s3_client, stdin=stdin)
        for item in parsed(iter_records(blocks, documents=sink is not None, limits=limits)):
            if isinstance(item, Problem):
                counts.quarantined += 1
                yield QuarantineEntry(display, item.location, item.reason, item.snippet)
                continue
            offset, record, unit, text = item
            counts.records += 1
            row = normalise_row(record, display, offset, default_account, text, limits)
            if type(row) is Rejection:
                counts.quarantined += 1
                yield QuarantineEntry(display, location(unit, offset), row.reason, record_snippet(record))
                continue
            if check and norm.outside(bounds, row[1], row[3], row[4]):  # type: ignore[index]
                counts.filtered += 1
                continue
            yield row  # type: ignore[misc]
    except Exception as exc:  # a source that cannot be read is quarantined, never fatal
        counts.complete = False
        counts.quarantined += 1
        reason = f"cannot read: {type(exc).__name__}: {exc}".splitlines()[0][:500]
        yield QuarantineEntry(display, "file", reason)


def enrich(table: pa.Table, enricher: Any) -> tuple[pa.Table, int]:
    """Enrich ``table``; on failure keep the rows with empty enrichment and count them."""
    if enricher is None or table.num_rows == 0:
        return table, 0
    try:
        out = enricher.enrich(table)
        return out.select(list(EVENT_COLUMNS)).cast(EVENT_SCHEMA), 0
    except Exception:  # enrichment must never lose records
        return table, table.num_rows


__all__ = [
    "ROWS_PER_TABLE",
    "SourceCounts",
    "enrich",
    "location",
    "micros",
    "read_source",
    "record_snippet",
]
