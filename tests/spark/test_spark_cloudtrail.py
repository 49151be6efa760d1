"""Raw CloudTrail read on Spark gives the events and findings `trailsight ingest` + DuckDB give.

The trail: three simulated days of a small organisation (2023-07-07 .. 07-09, six principals,
seed 3), the real invictus-ir Stratus detonation (2023-07-10), and an ``extra`` folder with
one delivery repeated under another name (its records are duplicates), a file with a good
record, a record without ``eventName`` and a record that is not an object, and a file that is
not JSON at all. The same files are ingested into a store and scored with DuckDB, read raw by
Spark (local[2], one session for the module) from the folders and, through
``python -m trailsight.spark_job``, from moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from spark_env import INVICTUS, require_spark, skip_or_fail

from moto_s3 import moto_s3
from trailsight import pipeline
from trailsight.engines import spark
from trailsight.engines.spark_cloudtrail import CloudTrailRead, read_cloudtrail
from trailsight.features.options import FeatureOptions
from trailsight.features.source import connect, open_events, quiet_ibis
from trailsight.ingest import IngestSummary, ingest
from trailsight.schema import EVENT_SCHEMA
from trailsight.simulate.generate import simulate
from trailsight.spark_job import main as spark_job
from trailsight.store import lineage
from trailsight.store.layout import StoreLayout

require_spark()  # skips here without pyspark or java, fails where TRAILSIGHT_REQUIRE_SPARK=1 (CI)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SINCE = datetime(2023, 7, 10, tzinfo=UTC)
UNTIL = datetime(2023, 7, 11, tzinfo=UTC)
BUCKET = "org-trail"

GOOD = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/carol", "accountId": "111122223333"},
    "eventTime": "2023-07-10T05:00:00Z",
    "eventSource": "s3.amazonaws.com",
    "eventName": "ListBuckets",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "aws-cli/2.15.0",
    "eventID": "00000000-0000-4000-8000-00000000c0de",
    "recipientAccountId": "111122223333",
}


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trail folder: sim/AWSLogs/..., invictus/, extra/ (duplicates and malformed input)."""
    if not INVICTUS.is_dir():
        skip_or_fail(f"real captures not found at {INVICTUS}")
    root = tmp_path_factory.mktemp("raw-trail")
    simulate(root / "sim", days=3, principals=6, seed=3, start=date(2023, 7, 7))
    shutil.copytree(INVICTUS, root / "invictus")
    extra = root / "extra"
    extra.mkdir()
    repeated = sorted((root / "invictus").glob("*.json"))[10]
    shutil.copy(repeated, extra / f"again-{repeated.name}")
    missing_name = {k: v for k, v in GOOD.items() if k != "eventName"} | {"eventID": "no-name"}
    (extra / "mixed.json").write_bytes(orjson.dumps({"Records": [GOOD, missing_name, "not a record"]}))
    (extra / "garbage.json").write_bytes(b"this is not json\n")
    return root


def _sources(trail: Path) -> list[str]:
    return [str(trail / "sim" / "AWSLogs"), str(trail / "invictus"), str(trail / "extra")]


@pytest.fixture(scope="module")
def ingested(trail: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[StoreLayout, IngestSummary]:
    layout = StoreLayout(tmp_path_factory.mktemp("raw-store") / "store")
    return layout, ingest(_sources(trail), layout, None, workers=0)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server and its fake credentials (read_cloudtrail forwards them to local Python workers)."""
    with pytest.MonkeyPatch.context() as mp, moto_s3(mp) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def spark_con(s3_endpoint: str) -> Iterator[Any]:
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    con = spark.connect("local[2]")
    yield con
    spark.stop(con)


@pytest.fixture(scope="module")
def raw(trail: Path, spark_con: Any) -> Iterator[CloudTrailRead]:
    read = read_cloudtrail(
        spark.spark_session(spark_con),
        _sources(trail),
        since=SINCE,
        until=UNTIL,
        forget_days=FeatureOptions().forget_days,
    )
    yield read
    read.unpersist()


def _nullable(table: pa.Table) -> pa.Table:
    schema = pa.schema([f.with_nullable(True) for f in EVENT_SCHEMA])
    return table.select(schema.names).cast(schema).sort_by("event_id")


def test_same_normalised_events_as_ingest(ingested: tuple[StoreLayout, IngestSummary], raw: CloudTrailRead) -> None:
    layout, summary = ingested
    with quiet_ibis():
        lake = open_events(connect(), layout, SINCE, UNTIL, FeatureOptions().forget_days).to_pyarrow()
    got = spark.to_utc_arrow(raw.events.toArrow())
    assert got.num_rows == lake.num_rows == raw.event_count == summary.new > 9000
    assert _nullable(got).equals(_nullable(lake))
    # every record of the trail falls in the range: the counts are ingest's
    assert (raw.records, raw.duplicates, raw.quarantined, raw.filtered) == (
        summary.records,
        summary.duplicates,
        summary.quarantined,
        summary.filtered,
    )
    assert raw.duplicates > 0
    assert raw.files == summary.files


def test_malformed_input_is_set_aside(
    ingested: tuple[StoreLayout, IngestSummary], raw: CloudTrailRead, trail: Path
) -> None:
    summary = ingested[1]
    assert summary.quarantine_file is not None
    expected = [orjson.loads(line) for line in summary.quarantine_file.read_bytes().splitlines()]
    got = [(p.source, p.location, p.reason, p.snippet) for p in raw.problems]
    assert got == [(e["source"], e["location"], e["reason"], e["snippet"]) for e in expected]
    assert {(Path(p.source).name, p.location) for p in raw.problems} == {
        ("mixed.json", "record 1"),
        ("mixed.json", "record 2"),
        ("garbage.json", "byte 0"),
    }
    assert raw.quarantined == 3
    # the good record beside the bad ones is kept
    kept = raw.events.where(f"event_id = '{GOOD['eventID']}'").select("source_file").collect()
    assert [r["source_file"] for r in kept] == [str(trail / "extra" / "mixed.json")]


@pytest.fixture(scope="module")
def duckdb_findings(ingested: tuple[StoreLayout, IngestSummary]) -> list[dict[str, Any]]:
    with quiet_ibis():
        return [f.to_dict() for f in pipeline.detect(ingested[0], SINCE, UNTIL, None, save=False)]


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("raw-findings") / "store"


@pytest.fixture(scope="module")
def raw_findings(raw: CloudTrailRead, spark_con: Any, raw_store: Path) -> list[dict[str, Any]]:
    found = spark.detect(raw_store, SINCE, UNTIL, None, con=spark_con, events=raw.events)
    assert StoreLayout(raw_store).state.is_file()  # saved in the store's state database
    return [f.to_dict() for f in found]


def test_same_findings_as_ingest_and_duckdb(
    duckdb_findings: list[dict[str, Any]], raw_findings: list[dict[str, Any]]
) -> None:
    assert len(duckdb_findings) >= 2
    assert any(f["principal"] == "arn:aws:iam::123837392027:user/bert-jan" for f in duckdb_findings)
    # The same findings, event ids and all: each one's unusual events, then the other calls of its
    # session (brought to the driver by a broadcast join on Spark), in the same stories.
    assert _findings(raw_findings) == _findings(duckdb_findings)
    assert any(len(f["event_ids"]) > f["count"] for f in raw_findings)
    assert [(s["members"], s["story_id"]) for s in _stories(raw_findings)] == [
        (s["members"], s["story_id"]) for s in _stories(duckdb_findings)
    ]
    # What an identity a finding's actor made then did is read from the lake (stories/follow.py),
    # which the raw path has not: the raw story is the stored one without those steps.
    for raw, stored in zip(_stories(raw_findings), _stories(duckdb_findings), strict=True):
        assert set(raw["principals"]) <= set(stored["principals"])
        assert set(raw["event_ids"]) <= set(stored["event_ids"])


def _findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The findings that are no story, their story named by its members."""
    members = {str(s["id"]): s["members"] for s in _stories(findings)}
    return [
        {**f, "story_id": members.get(str(f["story_id"]))} for f in findings if str(f["id"]) not in _story_ids(findings)
    ]


def _stories(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if str(f["id"]) in _story_ids(findings)]


def test_a_story_spans_principals_from_raw_cloudtrail(raw_findings: list[dict[str, Any]]) -> None:
    # The credential lineage of the raw records (users, keys and roles the detonation made) joins
    # the principals into one story, as it does over a store.
    stories = _stories(raw_findings)
    assert stories
    assert any(len(set(s["principals"])) >= 2 for s in stories)
    members = {m for s in stories for m in s["members"]}
    assert {f["story_id"] for f in raw_findings if f["id"] in members} <= {s["id"] for s in stories}
    assert any("Joined by credential lineage" in line for s in stories for line in s["explanation"])


def test_same_lineage_as_ingest(ingested: tuple[StoreLayout, IngestSummary], raw_store: Path) -> None:
    from_lake = lineage.links_from_lake(ingested[0], SINCE, UNTIL)
    with duckdb.connect(str(StoreLayout(raw_store).state), read_only=True) as con:
        saved = lineage.stored_links(con, SINCE, UNTIL)
    # What the raw run saved: the links its calls made (read on Spark, parsed on the driver by the
    # parser the lake's reader uses) and those its unusual events made (outside_use).
    assert [x for x in saved if x.link != "outside_use"] == from_lake
    kinds = {x.link for x in from_lake}
    assert {"access_key", "user", "assume_role"} <= kinds


def _story_ids(findings: list[dict[str, Any]]) -> set[str]:
    return {str(f["id"]) for f in findings if str(f["finding_type"]).startswith("AttackSequence:")}


def _upload(trail: Path, endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    files = [p for p in sorted(trail.rglob("*")) if p.is_file()]

    def put(path: Path) -> None:
        client.put_object(Bucket=BUCKET, Key=path.relative_to(trail).as_posix(), Body=path.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))


def test_spark_job_reads_s3(
    trail: Path,
    s3_endpoint: str,
    spark_con: Any,
    raw_findings: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _upload(trail, s3_endpoint)
    out, store = tmp_path / "findings.jsonl", tmp_path / "store"
    argv = ["--store", str(store), "--since", "2023-07-10", "--until", "2023-07-11", "--output", str(out)]
    argv += ["--endpoint-url", s3_endpoint]
    argv += ["--cloudtrail", f"s3://{BUCKET}/sim/AWSLogs/", "--cloudtrail", f"s3://{BUCKET}/invictus/"]
    argv += ["--cloudtrail", f"s3://{BUCKET}/extra/"]
    assert spark_job(argv) == 0
    err = capsys.readouterr().err
    assert "3 quarantined" in err
    from_s3 = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(f["id"], f["score"], f["event_ids"]) for f in from_s3] == [
        (f["id"], f["score"], f["event_ids"]) for f in raw_findings
    ]
    # the records set aside name their S3 objects
    quarantine = list((store / "quarantine").glob("spark-*.jsonl"))
    assert len(quarantine) == 1
    sources = {orjson.loads(line)["source"] for line in quarantine[0].read_bytes().splitlines()}
    assert sources == {f"s3://{BUCKET}/extra/mixed.json", f"s3://{BUCKET}/extra/garbage.json"}
