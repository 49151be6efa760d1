"""Event-id keys: a canonical UUID keys as its own bits, other texts by digest; a store of the
older text layout is converted and still de-duplicates exactly."""

from __future__ import annotations

import gzip
import hashlib
import uuid
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pytest

from trailsight.config import Settings
from trailsight.errors import ConfigError
from trailsight.ingest import ingest
from trailsight.ingest.pipeline import IngestOptions
from trailsight.store import state
from trailsight.store.layout import StoreLayout


def _halves(value: int) -> tuple[int, int]:
    hi, lo = value >> 64, value & ((1 << 64) - 1)
    return hi - (1 << 64) * (hi >> 63), lo - (1 << 64) * (lo >> 63)


def _digest(text: str) -> tuple[int, int]:
    d = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return int.from_bytes(d[:8], "big", signed=True), int.from_bytes(d[8:], "big", signed=True)


def test_canonical_uuids_key_as_their_bits_and_other_texts_by_digest() -> None:
    canonical = [str(uuid.UUID(int=v)) for v in (0, (1 << 128) - 1, 1 << 127, 0x0123456789ABCDEF_FEDCBA9876543210)]
    canonical += [str(uuid.uuid4()) for _ in range(50)]
    others = [
        canonical[3].upper(),  # another text of the same UUID: another key
        canonical[3].replace("-", ""),
        canonical[3][:8] + "_" + canonical[3][9:],  # 36 characters, a wrong separator
        "g" + canonical[3][1:],  # 36 characters, not hex
        "ts-0123456789abcdef0123456789abcde",
        "1",
        "",
        "é" * 18,  # 36 bytes of UTF-8
    ]
    texts = canonical + others
    hi, lo = state.event_keys(pa.array(texts))
    for i, text in enumerate(canonical):
        assert (int(hi[i]), int(lo[i])) == _halves(uuid.UUID(text).int), text
    for j, text in enumerate(others, start=len(canonical)):
        assert (int(hi[j]), int(lo[j])) == _digest(text), text
    assert len(set(zip(hi.tolist(), lo.tolist(), strict=True))) == len(texts)


def test_keys_of_slices_chunks_and_nulls_match_the_whole_column() -> None:
    texts = [str(uuid.uuid4()) if i % 7 else f"id-{i}" for i in range(200)]
    whole = state.event_keys(pa.array(texts))
    sliced = state.event_keys(pa.array(texts).slice(30, 100))
    assert np.array_equal(sliced[0], whole[0][30:130])
    assert np.array_equal(sliced[1], whole[1][30:130])
    chunked = state.event_keys(pa.chunked_array([pa.array(texts[:77]), pa.array(texts[77:])]))
    assert np.array_equal(chunked[0], whole[0])
    assert np.array_equal(chunked[1], whole[1])
    with_null = state.event_keys(pa.array([texts[1], None, texts[2]]))
    assert (int(with_null[0][1]), int(with_null[1][1])) == _digest("")
    assert (int(with_null[0][2]), int(with_null[1][2])) == (int(whole[0][2]), int(whole[1][2]))


def test_first_of_keys_keeps_the_first_of_each_key_and_day() -> None:
    same_day = np.zeros(5, np.int32)
    assert state.first_of_keys(np.array([1, 2, 3]), np.array([7, 8, 9]), same_day[:3]) is None
    # Equal low halves with different high halves are different keys.
    mask = state.first_of_keys(np.array([1, 2, 1, 3, 2]), np.array([5, 5, 5, 5, 5]), same_day)
    assert mask is not None
    assert mask.tolist() == [True, True, False, True, False]
    mask = state.first_of_keys(np.array([9, 4, 9, 9]), np.array([1, 2, 1, 3]), same_day[:4])
    assert mask is not None
    assert mask.tolist() == [True, True, False, True]
    # The same key on another event day is another event.
    mask = state.first_of_keys(np.array([9, 9, 9]), np.array([1, 1, 1]), np.array([20000, 20001, 20000], np.int32))
    assert mask is not None
    assert mask.tolist() == [True, True, False]


def _record(i: int, event_id: str) -> dict[str, object]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
        "eventTime": f"2025-03-03T10:00:{i % 60:02d}Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "eventID": event_id,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }


def test_a_store_of_the_older_text_layout_is_converted_and_still_deduplicates(tmp_path: Path) -> None:
    ids = [str(uuid.uuid4()) for _ in range(40)] + ["NOT-A-UUID-1", "x"]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.json.gz").write_bytes(
        gzip.compress(orjson.dumps({"Records": [_record(i, e) for i, e in enumerate(ids)]}))
    )
    store = tmp_path / "s"
    assert ingest([logs], store, workers=0).new == len(ids)
    # Put the state back as an older version kept it: the event ids as texts.
    layout = StoreLayout(store)
    with duckdb.connect(str(layout.state)) as con:
        con.execute(
            "CREATE TABLE event_ids (event_id VARCHAR NOT NULL, event_date DATE NOT NULL, batch_id VARCHAR NOT NULL)"
        )
        rows = [(e, "2025-03-03", "old-batch") for e in ids]
        con.executemany("INSERT INTO event_ids VALUES (?, ?, ?)", rows)
        con.execute("DROP TABLE event_keys")
    (logs / "b.json.gz").write_bytes(
        gzip.compress(orjson.dumps({"Records": [_record(i, e) for i, e in enumerate([*ids[::2], "new-1"])]}))
    )
    again = ingest([logs], store, workers=0, force=True)
    assert (again.new, again.duplicates) == (1, len(ids) + len(ids[::2]))
    with duckdb.connect(str(layout.state), read_only=True) as con:
        assert not state.table_exists(con, "event_ids")
        keys = con.execute("SELECT k_hi, k_lo, batch_id FROM event_keys").fetchall()
    assert len(keys) == len(ids) + 1
    hi, lo = state.event_keys(pa.array(ids))
    old = {(h, k) for h, k, b in keys if b == "old-batch"}
    assert old == set(zip(hi.tolist(), lo.tolist(), strict=True))


def _day_file(folder: Path, name: str, day: int, ids: list[str]) -> None:
    records = [dict(_record(i, e), eventTime=f"2025-03-{day:02d}T10:00:{i % 60:02d}Z") for i, e in enumerate(ids)]
    (folder / f"{name}.json.gz").write_bytes(gzip.compress(orjson.dumps({"Records": records})))


def test_keys_of_old_days_are_pruned_and_their_repeats_still_caught_in_the_lake(tmp_path: Path) -> None:
    settings = Settings(data={"ingest": {"dedup_days": 2}})
    logs, store = tmp_path / "logs", tmp_path / "s"
    logs.mkdir()
    by_day = {day: [str(uuid.uuid4()) for _ in range(30)] for day in range(1, 8)}
    for day, ids in by_day.items():
        _day_file(logs, f"d{day}", day, ids)
    first = ingest([logs], store, settings, workers=0)
    assert (first.new, first.duplicates) == (210, 0)
    layout = StoreLayout(store)
    with duckdb.connect(str(layout.state), read_only=True) as con:
        kept_days = con.execute("SELECT DISTINCT day(event_date) FROM event_keys ORDER BY 1").fetchall()
        horizon = state.key_horizon(con)
    assert [d for (d,) in kept_days] == [5, 6, 7]  # the newest day and the two before it
    assert horizon == (date(2025, 3, 5) - date(1970, 1, 1)).days
    # Redeliveries: of a pruned day (caught in its lake partition), of a kept day (caught by key),
    # mixed with new events of both; and the whole input again, forced.
    again = tmp_path / "again"
    again.mkdir()
    _day_file(again, "old", 2, [*by_day[2][:10], "new-old-1", "new-old-2"])
    _day_file(again, "recent", 6, [*by_day[6][:5], "new-recent-1"])
    second = ingest([again], store, settings, workers=0)
    assert (second.new, second.duplicates) == (3, 15)
    forced = ingest([logs, again], store, settings, workers=0, force=True)
    assert (forced.new, forced.duplicates) == (0, 210 + 18)
    with duckdb.connect(str(layout.state), read_only=True) as con:
        assert con.execute("SELECT min(event_date) FROM event_keys").fetchall() == [(date(2025, 3, 5),)]
    files = f"{store}/lake/**/*.parquet"
    lake = duckdb.sql(
        f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{files}', hive_partitioning = false)"
    ).fetchall()
    assert lake == [(213, 213)]


def test_an_event_is_a_duplicate_only_on_its_own_event_day(tmp_path: Path) -> None:
    """CloudTrail repeats a record with its own time: the same id on another day is kept, not dropped."""
    logs, store = tmp_path / "logs", tmp_path / "s"
    logs.mkdir()
    ids = [str(uuid.uuid4()) for _ in range(20)]
    _day_file(logs, "a", 3, ids)
    _day_file(logs, "b", 3, ids[:5])  # repeats in the same run, same day
    _day_file(logs, "c", 4, ids[:2])  # the same ids on another day
    first = ingest([logs], store, workers=0)
    assert (first.new, first.duplicates) == (22, 5)
    again = tmp_path / "again"
    again.mkdir()
    _day_file(again, "d", 4, [*ids[:3], "new-1"])  # two known on day 4, one known only on day 3
    second = ingest([again], store, workers=0)
    assert (second.new, second.duplicates) == (2, 2)
    files = f"{store}/lake/**/*.parquet"
    lake = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (event_id, event_date)) "
        f"FROM read_parquet('{files}', hive_partitioning = false)"
    ).fetchall()
    assert lake == [(24, 24)]  # 21 ids: two of them on two days


def test_dedup_days_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="dedup_days"):
        IngestOptions.from_settings(Settings(data={"ingest": {"dedup_days": 0}}))
    with pytest.raises(ConfigError, match="dedup_days"):
        IngestOptions.from_settings(Settings(data={"ingest": {"dedup_days": "7"}}))
    assert IngestOptions.from_settings(None).dedup_days == 30
