"""Security Hub, SNS and EventBridge sinks against moto's server on 127.0.0.1 (and a flaky proxy before it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import orjson
import pytest

from alert_samples import RAISED, as_alert, golden, many
from http_stub import FlakyProxy, Reply
from trailsight.outputs import aws
from trailsight.outputs.aws import EventBridgeSink, SecurityHubSink, SnsSink
from trailsight.outputs.registry import parse_output
from trailsight.outputs.retry import RetryPolicy

REGION = "us-east-1"


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION)


def count_calls(sink_client: Any, operation: str) -> list[int]:
    """Record the number of items in every call of ``operation`` made through ``sink_client``."""
    sizes: list[int] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params.get("Findings") or params.get("Entries") or [1]))

    sink_client.meta.events.register(f"provide-client-params.*.{operation}", hook)
    return sizes


def policy(retries: int = 3) -> tuple[RetryPolicy, list[float]]:
    sleeps: list[float] = []
    return RetryPolicy(retries=retries, backoff_s=0.5, sleep=sleeps.append), sleeps


@pytest.fixture
def queue(moto: str) -> Iterator[tuple[str, str]]:
    """A fresh SQS queue (url, arn) to observe what SNS / EventBridge delivered."""
    sqs = client("sqs", moto)
    name = f"observe-{len(sqs.list_queues().get('QueueUrls', []))}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield url, arn
    sqs.delete_queue(QueueUrl=url)


def drain(moto: str, url: str) -> list[dict[str, Any]]:
    sqs = client("sqs", moto)
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        msgs = got.get("Messages", [])
        if not msgs:
            return out
        out.extend(msgs)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
        )


# --------------------------------------------------------------------------- Security Hub


def test_securityhub_batches_of_100_and_update_on_reraise(moto: str) -> None:
    sh = client("securityhub", moto)
    sh.enable_security_hub()
    sink = parse_output(f"securityhub:{REGION}?endpoint={moto}")
    assert isinstance(sink, SecurityHubSink)
    sizes = count_calls(sink.client, "BatchImportFindings")
    alerts = many(250)
    result = sink.send(alerts)
    assert len(result.delivered) == 250
    assert not result.failed
    assert sizes == [100, 100, 50]
    # a re-raise (the finding grew) updates the same Security Hub finding, not a second one
    grown = replace(golden()[0], id="ts-000007", count=120, last_seen=golden()[0].last_seen + timedelta(minutes=20))
    sink.send([as_alert(grown, action="update", previous=96, at=RAISED + timedelta(minutes=15))])
    stored = [f for page in sh.get_paginator("get_findings").paginate() for f in page["Findings"]]
    assert len(stored) == 250
    found = [f for f in stored if f["Id"] == "trailsight/123837392027/ts-000007"]
    assert len(found) == 1
    assert found[0]["UpdatedAt"].startswith("2023-07-10T12:55:00")
    assert found[0]["LastObservedAt"].startswith("2023-07-10T12:48:24")


def test_securityhub_cuts_batches_by_bytes_and_rejects_oversized(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = SecurityHubSink(region=REGION, endpoint_url=moto)
    alerts = many(7)
    one = len(sink.fmt.encode(sink.fmt.render(alerts[0], sink.ctx))) + 1
    monkeypatch.setattr(aws, "SECURITYHUB_MAX_BATCH_BYTES", one * 3)
    sizes = count_calls(sink.client, "BatchImportFindings")
    assert len(sink.send(alerts).delivered) == 7
    assert sizes == [3, 3, 1]
    monkeypatch.setattr(aws, "SECURITYHUB_MAX_FINDING_BYTES", one - 10)
    result = sink.send(alerts[:1])
    assert not result.delivered
    assert "over Security Hub's 240 KB" in result.failed[0][1]


THROTTLE_REST: Reply = (
    429,
    {"x-amzn-ErrorType": "TooManyRequestsException", "Content-Type": "application/json"},
    b'{"message":"Rate exceeded"}',
)
THROTTLE_JSON: Reply = (
    400,
    {"Content-Type": "application/x-amz-json-1.1"},
    b'{"__type":"ThrottlingException","message":"Rate exceeded"}',
)
THROTTLE_QUERY: Reply = (
    400,
    {"Content-Type": "text/xml"},
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>r</RequestId></ErrorResponse>",
)
UNAVAILABLE: Reply = (503, {"Content-Type": "text/plain"}, b"Service Unavailable")


def _sink(kind: str, url: str, moto: str, pol: RetryPolicy) -> Any:
    if kind == "securityhub":
        client("securityhub", moto).enable_security_hub()
        return SecurityHubSink(region=REGION, endpoint_url=url, policy=pol)
    if kind == "sns":
        arn = client("sns", moto).create_topic(Name="flaky")["TopicArn"]
        return SnsSink(arn, endpoint_url=url, policy=pol)
    return EventBridgeSink("default", region=REGION, endpoint_url=url, policy=pol)


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        ("securityhub", THROTTLE_REST),
        ("securityhub", UNAVAILABLE),
        ("sns", THROTTLE_QUERY),
        ("sns", UNAVAILABLE),
        ("eventbridge", THROTTLE_JSON),
        ("eventbridge", UNAVAILABLE),
    ],
)
def test_aws_sinks_retry_throttling_and_5xx_then_deliver(moto: str, kind: str, reply: Reply) -> None:
    proxy = FlakyProxy(moto, reply, fail_first=2)
    try:
        pol, sleeps = policy(retries=3)
        sink = _sink(kind, proxy.url, moto, pol)
        result = sink.send(many(3))
        assert len(result.delivered) == 3
        assert not result.failed
        assert sleeps[:2] == [0.5, 1.0]  # exponential back-off between the failed tries
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("kind", "reply", "needle"),
    [
        ("securityhub", THROTTLE_REST, "TooManyRequestsException"),
        ("sns", THROTTLE_QUERY, "Throttling"),
        ("eventbridge", UNAVAILABLE, "503"),
    ],
)
def test_aws_sinks_give_up_after_retries_and_skip_the_rest(moto: str, kind: str, reply: Reply, needle: str) -> None:
    proxy = FlakyProxy(moto, reply, fail_first=-1)
    try:
        pol, sleeps = policy(retries=2)
        sink = _sink(kind, proxy.url, moto, pol)
        n = 120 if kind == "securityhub" else 25
        alerts = many(n)  # several batches (or messages): only the first is tried
        result = sink.send(alerts)
        assert not result.delivered
        assert len(result.failed) == n
        assert needle in result.failed[0][1]
        assert all(error.startswith("not tried: endpoint down after 3 attempts") for _, error in result.failed[-5:])
        assert sleeps == [0.5, 1.0]
        assert result.attempts == 3
    finally:
        proxy.close()


def test_aws_access_denied_is_final_at_once(moto: str) -> None:
    reply: Reply = (
        403,
        {"Content-Type": "application/x-amz-json-1.1"},
        b'{"__type":"AccessDeniedException","message":"not allowed"}',
    )
    proxy = FlakyProxy(moto, reply)
    try:
        pol, sleeps = policy(retries=3)
        result = EventBridgeSink("default", region=REGION, endpoint_url=proxy.url, policy=pol).send(many(12))
        assert len(result.failed) == 12
        assert sleeps == []
        assert proxy.requests == 2
        assert "AccessDeniedException" in result.failed[0][1]
    finally:
        proxy.close()


# --------------------------------------------------------------------------- SNS


def test_sns_publishes_json_with_severity_attributes(moto: str, queue: tuple[str, str]) -> None:
    sns = client("sns", moto)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue[1], Attributes={"RawMessageDelivery": "true"})
    sink = parse_output(f"sns:{topic}?format=ocsf&endpoint={moto}")
    alerts = [as_alert(f) for f in golden()]
    assert len(sink.send(alerts).delivered) == 2
    got = drain(moto, queue[0])
    assert len(got) == 2
    bodies = [orjson.loads(m["Body"]) for m in got]
    assert {b["class_uid"] for b in bodies} == {2004}  # OCSF Detection Finding
    attrs = got[0]["MessageAttributes"]
    assert attrs["severity"]["StringValue"] in ("Medium", "High", "Low")
    assert attrs["severity_score"]["DataType"] == "Number"
    assert attrs["action"]["StringValue"] == "new"


def test_sns_topic_arn_is_checked() -> None:
    with pytest.raises(Exception, match="topic ARN"):
        parse_output("sns:not-an-arn")


# --------------------------------------------------------------------------- EventBridge


def test_eventbridge_puts_10_per_call_with_detail_type_per_kind(moto: str, queue: tuple[str, str]) -> None:
    events = client("events", moto)
    events.put_rule(Name="ts", EventPattern=orjson.dumps({"source": ["trailsight"]}).decode())
    events.put_targets(Rule="ts", Targets=[{"Id": "q", "Arn": queue[1]}])
    sink = parse_output(f"eventbridge:default?endpoint={moto}")
    assert isinstance(sink, EventBridgeSink)
    sizes = count_calls(sink.client, "PutEvents")
    alerts = many(23)
    assert len(sink.send(alerts).delivered) == 23
    assert sizes == [10, 10, 3]
    got = [orjson.loads(m["Body"]) for m in drain(moto, queue[0])]
    assert len(got) == 23
    assert {g["detail-type"] for g in got} == {f"trailsight finding {golden()[1].finding_type}"}
    assert got[0]["source"] == "trailsight"
    assert got[0]["detail"]["type"] == "trailsight.finding"  # the watch alert (format jsonl)


def test_sns_and_eventbridge_cut_long_lists_to_fit(moto: str, queue: tuple[str, str]) -> None:
    sns = client("sns", moto)
    topic = sns.create_topic(Name="big")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue[1], Attributes={"RawMessageDelivery": "true"})
    base = golden()[0]
    huge = replace(base, timeline=base.timeline * 40, event_ids=base.event_ids * 40)
    alert = as_alert(huge)
    assert len(alert.to_json()) > 256 * 1024
    assert len(SnsSink(topic, endpoint_url=moto).send([alert]).delivered) == 1
    assert len(EventBridgeSink(region=REGION, endpoint_url=moto).send([alert]).delivered) == 1
    body = orjson.loads(drain(moto, queue[0])[0]["Body"])
    assert body["finding"]["truncated"] is True
    assert len(body["finding"]["timeline"]) == 20
    assert body["event_count"] == huge.count  # the counts stay whole
