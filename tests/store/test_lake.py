"""The lake: only registered files are read; ranges open only their days; orphans are swept."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from trailsight.ingest import ingest
from trailsight.ingest.normalise import normalise_row, rows_to_table
from trailsight.store import lake, state
from trailsight.store.layout import StoreLayout


def _record(i: int, day: str, account: str = "111122223333") -> dict[str, object]:
    return {
        "eventVersion": "1.08",
        "eventTime": f"{day}T12:00:{i % 60:02d}Z",
        "eventName": "ListBuckets",
        "eventSource": "s3.amazonaws.com",
        "eventID": f"{day}-{account}-{i}",
        "recipientAccountId": account,
        "userIdentity": {"type": "Root", "arn": f"arn:aws:iam::{account}:root", "accountId": account},
    }


def _store(tmp_path: Path) -> StoreLayout:
    logs = tmp_path / "logs"
    logs.mkdir()
    records = [_record(i, day) for day in ("2025-03-01", "2025-03-02", "2025-03-03") for i in range(3)]
    records += [_record(i, "2025-03-02", "444455556666") for i in range(2)]
    (logs / "a.json.gz").write_bytes(gzip.compress(orjson.dumps({"Records": records})))
    layout = StoreLayout(tmp_path / "s")
    ingest([logs], layout, workers=0)
    return layout


def test_lake_files_are_registered_and_partitioned(tmp_path: Path) -> None:
    layout = _store(tmp_path)
    files = lake.lake_files(layout)
    assert len(files) == 4
    assert all(p.is_file() and p.suffix == ".parquet" for p in files)
    parts = sorted(p.relative_to(layout.lake).parent.as_posix() for p in files)
    assert parts == [
        "account_id=111122223333/event_date=2025-03-01",
        "account_id=111122223333/event_date=2025-03-02",
        "account_id=111122223333/event_date=2025-03-03",
        "account_id=444455556666/event_date=2025-03-02",
    ]
    day2 = lake.lake_files(layout, datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC))
    assert len(day2) == 2
    assert len(lake.lake_files(layout, accounts=["444455556666"])) == 1
    assert lake.lake_files(StoreLayout(tmp_path / "empty")) == []


def test_events_sql_and_open_events_filter_by_time(tmp_path: Path) -> None:
    layout = _store(tmp_path)
    con = duckdb.connect()
    rel = lake.open_events(con, layout, datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 2, 12, 0, 2, tzinfo=UTC))
    assert rel.aggregate("count(*)").fetchall() == [(4,)]  # 12:00:00 and :01 of both accounts
    assert lake.open_events(con, layout).aggregate("count(*)").fetchall() == [(11,)]
    sql, params = lake.events_sql(layout, accounts=["444455556666"])
    assert con.execute(f"SELECT count(*) FROM ({sql})", params).fetchall() == [(2,)]
    empty = lake.open_events(con, StoreLayout(tmp_path / "none"))
    assert empty.columns == [f.name for f in lake.EVENT_SCHEMA]
    assert empty.aggregate("count(*)").fetchall() == [(0,)]


def test_unregistered_files_are_ignored_and_swept(tmp_path: Path) -> None:
    layout = _store(tmp_path)
    row = normalise_row(_record(99, "2025-03-01"), "x", 0)
    table = rows_to_table([row])  # type: ignore[list-item]
    orphan = lake.write_temp(layout, table, "111122223333", date(2025, 3, 1), "orphan")
    published = lake.publish(layout, orphan, "orphan", "111122223333", date(2025, 3, 1), 1)
    leftover = lake.write_temp(layout, table, "111122223333", date(2025, 3, 1), "leftover")
    assert (layout.root / published.path).exists()
    con = duckdb.connect()
    assert lake.open_events(con, layout).aggregate("count(*)").fetchall() == [(11,)]  # orphan not read
    with state.connect(layout, read_only=True) as db:
        registered = lake.registered_paths(db)
    assert lake.sweep_orphans(layout, registered) == 2
    assert not (layout.root / published.path).exists()
    assert not leftover.exists()
    assert len(lake.lake_files(layout)) == 4


def test_split_partitions_sorts_only_mixed_tables(tmp_path: Path) -> None:
    rows = [normalise_row(_record(i, d), "x", i) for i, d in enumerate(["2025-03-02", "2025-03-01", "2025-03-02"])]
    table = rows_to_table(rows)  # type: ignore[arg-type]
    parts = lake.split_partitions(table)
    assert [(a, str(d), t.num_rows) for a, d, t in parts] == [
        ("111122223333", "2025-03-01", 1),
        ("111122223333", "2025-03-02", 2),
    ]
    single = lake.split_partitions(table.slice(0, 1))
    assert single[0][2].equals(table.slice(0, 1))
    assert lake.split_partitions(table.slice(0, 0)) == []
    assert isinstance(parts[0][2], pa.Table)


def test_split_partitions_keeps_row_order_in_runs_and_when_interleaved() -> None:
    keys = [("222233334444", "2025-03-02"), ("111122223333", "2025-03-02"), ("222233334444", "2025-03-01")]
    for pattern in ([0] * 5 + [1] * 5 + [2] * 3 + [0] * 5, [0, 1, 2] * 30):  # a few runs / finely interleaved
        rows = [normalise_row(_record(i, keys[k][1], keys[k][0]), "x", i) for i, k in enumerate(pattern)]
        table = rows_to_table(rows)  # type: ignore[arg-type]
        parts = lake.split_partitions(table)
        assert [(a, str(d)) for a, d, _ in parts] == sorted(keys)
        for account, when, part in parts:
            expected = [i for i, k in enumerate(pattern) if keys[k] == (account, str(when))]
            assert part.column("source_offset").to_pylist() == expected
            assert part.schema == table.schema
