"""Small normalised event tables for tests, examples and notebooks.

:func:`make_events` fills every column of :data:`trailsight.schema.EVENT_SCHEMA` from a few
keyword fields per event, and :func:`write_lake` lays such a table out as a store's lake
(``lake/account_id=/event_date=/…parquet``) the way ingest does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trailsight.schema import EVENT_SCHEMA
from trailsight.store.layout import StoreLayout

_DEFAULTS: dict[str, Any] = {
    "account_id": "111111111111",
    "region": "us-east-1",
    "event_source": "ec2.amazonaws.com",
    "event_name": "DescribeInstances",
    "read_only": True,
    "event_type": "AwsApiCall",
    "identity_type": "IAMUser",
    "source_ip": "198.51.100.7",
    "user_agent": "aws-cli/2.15.0",
    "ua_family": "cli",
    "ip_kind": "public",
    "country": "GB",
    "city": "London",
    "asn": 64500,
    "as_org": "Example ISP",
    "api_risk": 0.1,
}


def make_events(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Return an EVENT_SCHEMA table; each row needs ``event_time`` (aware UTC) and ``principal``."""
    records = []
    for i, row in enumerate(rows):
        rec = dict(_DEFAULTS)
        rec.update(row)
        when: datetime = rec["event_time"]
        if when.tzinfo is None:
            raise ValueError("event_time must be timezone-aware")
        rec.setdefault("event_date", when.date())
        rec.setdefault("actor", rec["principal"])
        rec.setdefault("service", str(rec["event_source"]).removesuffix(".amazonaws.com"))
        if "event_id" not in rec:
            digest = hashlib.sha1(f"{i}|{when.isoformat()}|{rec['principal']}".encode(), usedforsecurity=False)
            rec["event_id"] = digest.hexdigest()[:32]
        records.append(rec)
    columns = {f.name: [r.get(f.name) for r in records] for f in EVENT_SCHEMA}
    return pa.Table.from_pydict(columns, schema=EVENT_SCHEMA)


def write_lake(layout: StoreLayout, table: pa.Table, batch: str = "batch") -> list[Path]:
    """Write ``table`` into the store's lake, one file per (account, day) partition."""
    paths: list[Path] = []
    keys = sorted(
        {(a, d) for a, d in zip(table["account_id"].to_pylist(), table["event_date"].to_pylist(), strict=True)}
    )
    for account, day in keys:
        mask = pc.and_(pc.equal(table["account_id"], account), pc.equal(table["event_date"], pa.scalar(day)))
        part = table.filter(mask)
        folder = layout.partition(account, day.isoformat())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{batch}.parquet"
        pq.write_table(part, path)
        paths.append(path)
    return paths
