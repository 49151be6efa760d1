"""sqs:// intake against moto's S3, SQS and SNS on 127.0.0.1: every notification shape, poison, kills, visibility."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from conftest import INVICTUS

from moto_s3 import moto_s3
from trailsight.errors import ConfigError
from trailsight.ingest import ingest
from trailsight.ingest.sqs import NotificationError, drain_queue, parse_notification, parse_queue_uri
from trailsight.store.layout import StoreLayout

BUCKET = "org-trail"
ORG = "AWSLogs/o-abc123def4/"
FILES = sorted(INVICTUS.glob("*.json"))[:6]


def org_key(path: Path) -> str:
    """The org-trail key CloudTrail would give a file: AWSLogs/o-.../<account>/CloudTrail/<region>/Y/M/D/name.gz."""
    account, _, region, stamp = path.name.split("_")[:4]
    return f"{ORG}{account}/CloudTrail/{region}/{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}/{path.name}.gz"


def records(paths: list[Path]) -> int:
    return sum(len(orjson.loads(p.read_bytes())["Records"]) for p in paths)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the org-trail bucket and a queue (no redrive policy)."""
    with moto_s3(monkeypatch) as url:
        s3 = boto3.client("s3", endpoint_url=url)
        sqs = boto3.client("sqs", endpoint_url=url)
        s3.create_bucket(Bucket=BUCKET)
        queue = sqs.create_queue(QueueName="trail-notices")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield {"url": url, "s3": s3, "sqs": sqs, "queue": queue, "arn": arn}


def put(aws: dict[str, Any], path: Path, key: str | None = None) -> tuple[str, int, str]:
    """Upload ``path`` gzipped; return (key, size, etag)."""
    body = gzip.compress(path.read_bytes())
    key = key or org_key(path)
    etag = aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    return key, len(body), etag


def s3_event(key: str, size: int, etag: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 event notification as S3 writes it (the key URL-encoded)."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2023-07-10T12:25:00.000Z",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag},
                },
            }
        ]
    }


def eventbridge_event(key: str, size: int, etag: str) -> dict[str, Any]:
    """An EventBridge "Object Created" event, as a rule delivers it to SQS."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2023-07-10T12:25:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "cloudtrail.amazonaws.com",
            "reason": "PutObject",
        },
    }


def uri(aws: dict[str, Any], **opts: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"wait": 0, **opts}.items())
    return f"sqs://{aws['queue']}?{query}"


def remaining(aws: dict[str, Any]) -> int:
    attrs = aws["sqs"].get_queue_attributes(
        QueueUrl=aws["queue"], AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


# --------------------------------------------------------------------------- shapes


def test_parse_every_notification_shape() -> None:
    key = "AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2023/07/10/a b+c.json.gz"
    direct = s3_event(key, 10, "e1")
    assert parse_notification(orjson.dumps(direct)).objects[0].key == key  # URL-decoded
    sns = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": orjson.dumps(direct).decode(),
    }
    assert parse_notification(orjson.dumps(sns)).objects[0].etag == "e1"
    bridge = parse_notification(orjson.dumps(eventbridge_event(key, 10, "e2")))
    assert (bridge.objects[0].key, bridge.objects[0].size) == (key, 10)
    assert parse_notification(b'{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}').test_event
    sns_test = {"Type": "Notification", "Message": '{"Service":"Amazon S3","Event":"s3:TestEvent"}'}
    assert parse_notification(orjson.dumps(sns_test)).test_event
    removed = parse_notification(orjson.dumps(s3_event(key, 0, "", name="ObjectRemoved:Delete")))
    assert (removed.objects, removed.other_events) == ((), 1)
    for bad in (b"not json", b"[1]", b'{"hello":1}', b'{"Records":[{"eventSource":"aws:sqs"}]}', b'{"Records":{}}'):
        with pytest.raises(NotificationError):
            parse_notification(bad)


def test_queue_uri_forms() -> None:
    spec = parse_queue_uri("sqs://sqs.eu-west-1.amazonaws.com/111122223333/trail?wait=5&visibility=60")
    assert (spec.url, spec.region, spec.endpoint_url) == (
        "https://sqs.eu-west-1.amazonaws.com/111122223333/trail",
        "eu-west-1",
        None,
    )
    assert (spec.wait_s, spec.visibility_s) == (5, 60)
    local = parse_queue_uri("sqs://http://127.0.0.1:5000/123456789012/q")
    assert local.endpoint_url == "http://127.0.0.1:5000"
    assert local.url.endswith("/123456789012/q")
    for bad in (
        "sqs://host",
        "sqs://sqs.eu-west-1.amazonaws.com/1/q?wait=30",
        "sqs://h/1/q?colour=red",
        "sqs://h/1/q?max=x",
    ):
        with pytest.raises(ConfigError):
            parse_queue_uri(bad)


def test_drain_reads_every_shape_and_skips_digests_and_other_logs(aws: dict[str, Any], tmp_path: Path) -> None:
    sqs, queue = aws["sqs"], aws["queue"]
    # 1. S3 -> SQS, configured on the bucket (moto sends the s3:TestEvent first, then one event per object)
    aws["s3"].put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": aws["arn"], "Events": ["s3:ObjectCreated:*"]}]},
    )
    put(aws, FILES[0])
    put(aws, FILES[1])
    digest = (
        f"{ORG}218007301253/CloudTrail-Digest/us-east-1/2023/07/10/"
        "218007301253_CloudTrail-Digest_us-east-1_x_us-east-1_20230710T122500Z.json.gz"
    )
    aws["s3"].put_object(Bucket=BUCKET, Key=digest, Body=gzip.compress(b"{}"))
    aws["s3"].put_object(Bucket=BUCKET, Key=f"{ORG}218007301253/Config/us-east-1/2023/7/10/cfg.json.gz", Body=b"x")
    aws["s3"].put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    # 2. S3 -> SNS -> SQS, enveloped and raw
    sns = boto3.client("sns", endpoint_url=aws["url"])
    topic = sns.create_topic(Name="trail")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=aws["arn"])
    sns.publish(TopicArn=topic, Message=orjson.dumps(s3_event(*put(aws, FILES[2]))).decode())
    raw_topic = sns.create_topic(Name="trail-raw")["TopicArn"]
    sns.subscribe(TopicArn=raw_topic, Protocol="sqs", Endpoint=aws["arn"], Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=raw_topic, Message=orjson.dumps(s3_event(*put(aws, FILES[3]))).decode())
    # 3. EventBridge "Object Created" -> SQS
    sqs.send_message(QueueUrl=queue, MessageBody=orjson.dumps(eventbridge_event(*put(aws, FILES[4]))).decode())
    # the same object announced twice (S3 delivers at least once) adds nothing
    sqs.send_message(QueueUrl=queue, MessageBody=orjson.dumps(eventbridge_event(*put(aws, FILES[4]))).decode())

    report = drain_queue(uri(aws), StoreLayout(tmp_path / "s"), endpoint_url=aws["url"], workers=0)
    expected = records(FILES[:5])
    assert report.test_events == 1
    assert report.skipped_keys == 2  # the digest and the AWS Config file
    assert report.files == 5
    assert report.stored == expected
    assert report.records_in == report.stored + report.duplicates + report.filtered + report.quarantined
    assert report.deleted == report.messages == 9
    assert report.left == 0
    assert report.poison == 0
    assert remaining(aws) == 0
    # the same files ingested straight from disk give the same events
    direct = ingest([str(p) for p in FILES[:5]], tmp_path / "direct", workers=0)
    assert direct.new == report.stored


def test_poison_message_is_left_and_parked_without_a_dlq(aws: dict[str, Any], tmp_path: Path) -> None:
    sqs, queue = aws["sqs"], aws["queue"]
    sqs.send_message(QueueUrl=queue, MessageBody="this is not a notification")
    sqs.send_message(QueueUrl=queue, MessageBody=orjson.dumps(s3_event(*put(aws, FILES[0]))).decode())
    report = drain_queue(uri(aws, visibility=1), StoreLayout(tmp_path / "s"), endpoint_url=aws["url"], workers=0)
    assert (report.poison, report.deleted, report.left, report.parked) == (1, 1, 1, 1)
    assert report.stored == records(FILES[:1])
    assert any("not JSON" in e for e in report.errors)
    time.sleep(1.2)
    again = drain_queue(uri(aws, visibility=1), StoreLayout(tmp_path / "s"), endpoint_url=aws["url"], workers=0)
    assert again.messages == 0  # parked: not received every cycle
    assert remaining(aws) == 1  # but not deleted either


def test_poison_message_goes_to_the_dead_letter_queue(aws: dict[str, Any], tmp_path: Path) -> None:
    sqs = aws["sqs"]
    dlq = sqs.create_queue(QueueName="trail-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = orjson.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).decode()
    queue = sqs.create_queue(QueueName="with-dlq", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody='{"Records": "nope"}')
    source = f"sqs://{queue}?wait=0&visibility=1"
    for _ in range(3):
        report = drain_queue(source, StoreLayout(tmp_path / "s"), endpoint_url=aws["url"], workers=0)
        assert report.deleted == 0
        assert report.parked == 0
        time.sleep(1.2)
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in moved] == ['{"Records": "nope"}']


def test_missing_object_is_retried_then_parked(aws: dict[str, Any], tmp_path: Path) -> None:
    key = org_key(FILES[0])
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=orjson.dumps(s3_event(key, 123, "abc")).decode())
    first = drain_queue(
        uri(aws, visibility=1, max_receives=2), StoreLayout(tmp_path / "s"), endpoint_url=aws["url"], workers=0
    )
    assert (first.deleted, first.left, first.parked) == (0, 1, 0)
    time.sleep(1.2)
    second = drain_queue(
        uri(aws, visibility=1, max_receives=2), StoreLayout(tmp_path / "s"), endpoint_url=aws["url"], workers=0
    )
    assert (second.deleted, second.left, second.parked) == (0, 1, 1)
    assert remaining(aws) == 1


def test_visibility_is_extended_while_a_large_object_is_read(aws: dict[str, Any], tmp_path: Path) -> None:
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=orjson.dumps(s3_event(*put(aws, FILES[0]))).decode())
    seen_meanwhile: list[int] = []

    def slow_ingest(sources: Any) -> Any:
        for _ in range(5):
            time.sleep(0.6)
            got = aws["sqs"].receive_message(QueueUrl=aws["queue"], WaitTimeSeconds=0).get("Messages", [])
            seen_meanwhile.append(len(got))
        return ingest([], tmp_path / "s", objects=sources, endpoint_url=aws["url"], workers=0)

    report = drain_queue(uri(aws, visibility=1), StoreLayout(tmp_path / "s"), ingest_objects=slow_ingest)
    assert seen_meanwhile == [0, 0, 0, 0, 0]  # 3 s of reading with a 1 s visibility: never visible to others
    assert report.visibility_extensions >= 3
    assert report.deleted == 1


def test_kill_between_commit_and_delete_loses_and_doubles_nothing(aws: dict[str, Any], tmp_path: Path) -> None:
    for path in FILES[:3]:
        aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=orjson.dumps(s3_event(*put(aws, path))).decode())
    store = tmp_path / "s"
    child = textwrap.dedent(
        f"""
        import os, signal, boto3
        from pathlib import Path
        from trailsight.ingest.sqs import drain_queue
        from trailsight.store.layout import StoreLayout

        class KillOnDelete:
            def __init__(self, inner):
                self.inner = inner
            def __getattr__(self, name):
                return getattr(self.inner, name)
            def delete_message_batch(self, **kw):
                os.kill(os.getpid(), signal.SIGKILL)  # after the commit, before any delete

        client = KillOnDelete(boto3.client("sqs", endpoint_url={aws["url"]!r}))
        drain_queue({uri(aws, visibility=1)!r}, StoreLayout(Path({str(store)!r})),
                    endpoint_url={aws["url"]!r}, client=client, workers=0)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120, check=False)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert remaining(aws) == 3  # nothing deleted
    time.sleep(1.2)
    report = drain_queue(uri(aws, visibility=1), StoreLayout(store), endpoint_url=aws["url"], workers=0)
    assert report.already_ingested == 3
    assert report.files == 0
    assert report.stored == 0
    assert report.deleted == 3
    assert remaining(aws) == 0
    # every event exactly once
    import duckdb

    from trailsight.store.lake import events_sql

    sql, params = events_sql(StoreLayout(store))
    with duckdb.connect() as con:
        total, distinct = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM ({sql})", params).fetchone() or (
            0,
            0,
        )
    assert total == distinct == records(FILES[:3])


def test_ingest_cli_drains_once(aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trailsight.cli.main import main

    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=orjson.dumps(s3_event(*put(aws, FILES[0]))).decode())
    capsys.readouterr()
    try:
        main(
            [
                "ingest",
                uri(aws),
                "--store",
                str(tmp_path / "s"),
                "--endpoint-url",
                aws["url"],
                "--json",
                "--workers",
                "0",
            ]
        )
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0
    assert out["deleted"] == 1
    assert out["stored"] == records(FILES[:1])


def test_watch_cycle_drains_the_queue_and_reports_it(
    aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from trailsight.config import Settings
    from trailsight.outputs.base import Delivery
    from trailsight.watch import WatchOptions, run_cycle

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws["url"])
    for path in FILES[:2]:
        aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=orjson.dumps(s3_event(*put(aws, path))).decode())

    class Quiet:
        name = "quiet"

        def send(self, alerts: Any) -> Delivery:
            return Delivery(delivered=list(alerts))

        def close(self) -> None:
            pass

    options = WatchOptions(source=uri(aws), store=tmp_path / "s")
    report = run_cycle(
        options,
        Settings(),
        Quiet(),
        datetime(2023, 7, 10, 12, 40, tzinfo=UTC),
        detect_fn=lambda layout, since, until, settings, detectors: [],
    ).to_dict()
    assert report["files_ingested"] == 2
    assert report["events_ingested"] == records(FILES[:2])
    intake = report["intake"]
    assert (intake["messages"], intake["deleted"], intake["receives"]) == (2, 2, 2)
    assert intake["records_in"] == intake["stored"] + intake["duplicates"] + intake["filtered"] + intake["quarantined"]
    assert remaining(aws) == 0
