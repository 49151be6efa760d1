"""Intake from S3 event notifications on an SQS queue (``sqs://QUEUE_URL``).

An organisation trail writes thousands of objects an hour; listing the bucket to find them
does not scale, so the usual way in is a queue that S3 notifies. :func:`drain_queue` reads the
queue until it is empty (or ``max`` messages), in rounds:

1. **Receive** with long polling (``WaitTimeSeconds``, default 20 s) and batch receive (10
   messages a call), each message hidden for ``visibility`` seconds.
2. **Parse** every shape AWS delivers (:func:`parse_notification`): S3 → SQS (``Records``),
   S3 → SNS → SQS (the SNS envelope, or the bare event with raw message delivery), EventBridge
   ``Object Created`` events routed to SQS, and the ``s3:TestEvent`` S3 sends when a
   notification is configured. Keys that are not CloudTrail log files (digests, Insights, AWS
   Config and other services' logs in the same bucket) are skipped.
3. **Ingest** the objects named (one :func:`~trailsight.ingest.pipeline.ingest` call a round,
   no listing). While it runs a heartbeat thread extends the visibility of the messages held,
   so a large object cannot make its message reappear mid-read.
4. **Delete** a message only when every object it names is in the ingest manifest — that is,
   committed to the store. A kill between the commit and the delete redelivers the message;
   the manifest then skips its objects and the message is deleted: nothing lost, nothing twice.

A message that cannot be parsed (*poison*) or whose objects keep failing is never deleted
and never stops the drain. When the queue has a redrive policy it is simply left: SQS moves it
to the dead-letter queue after ``maxReceiveCount`` receives. Without one it is reported and
*parked* — hidden for 6 hours — once it has been received ``max_receives`` times
(poison: at once), so it does not come back every cycle.

Options after ``?``: ``wait`` (0–20 s), ``visibility`` (s, default 300), ``max`` (messages a
drain, default 20000), ``batch`` (messages a round, default 2000), ``max_receives`` (default 5),
``keys=any`` (ingest every ``.json[.gz]`` key, not only CloudTrail-named ones).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import orjson

from trailsight.config import Settings
from trailsight.errors import ConfigError, IngestError, TrailsightError
from trailsight.ingest.sources import SourceFile, is_cloudtrail_key, path_account
from trailsight.store.layout import StoreLayout

SCHEME: Final = "sqs://"
PARK_SECONDS: Final = 21_600  # SQS caps a message's total visibility at 12 h from its receive
MAX_VISIBILITY: Final = 43_200
_REGION_HOST: Final = re.compile(r"(?:^|\.)(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com(?:\.cn)?$")


class NotificationError(IngestError):
    """A queue message that is not an S3 notification trailsight can read."""


@dataclass(frozen=True, slots=True)
class S3Object:
    """One object a notification names."""

    bucket: str
    key: str
    size: int
    etag: str

    def source(self) -> SourceFile:
        """The object as an ingest source (the same key and version a listing gives)."""
        return SourceFile(
            key=f"s3://{self.bucket}/{self.key}", size=self.size, version=self.etag, account=path_account(self.key)
        )


@dataclass(frozen=True, kw_only=True)
class Notification:
    """What one message says: objects created, or only a test event / other events."""

    objects: tuple[S3Object, ...] = ()
    test_event: bool = False
    other_events: int = 0  # records of events other than ObjectCreated (deletes, restores ...)


def _s3_record(record: Mapping[str, Any]) -> S3Object | None:
    if not isinstance(record, Mapping):
        raise NotificationError("a Records entry is not an object")
    name = str(record.get("eventName", ""))
    if record.get("eventSource") != "aws:s3":
        raise NotificationError(f"a record from {str(record.get('eventSource'))[:40]!r}, not aws:s3")
    if not name.startswith("ObjectCreated:"):
        return None
    try:
        s3 = record["s3"]
        obj = s3["object"]
        # S3 URL-encodes keys in notifications ("a b" arrives as "a+b")
        key = urllib.parse.unquote_plus(str(obj["key"]))
        return S3Object(
            bucket=str(s3["bucket"]["name"]),
            key=key,
            size=int(obj.get("size", 0)),
            etag=str(obj.get("eTag", "")).strip('"'),
        )
    except (KeyError, TypeError, ValueError):
        raise NotificationError("an ObjectCreated record without s3.bucket.name / s3.object.key") from None


def parse_notification(body: str | bytes, *, _depth: int = 0) -> Notification:
    """Read one SQS message body in any of the shapes described in the module docstring."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotificationError("message body is not JSON") from None
    if not isinstance(data, dict):
        raise NotificationError("message body is not a JSON object")
    if data.get("Type") == "Notification" and "Message" in data and _depth == 0:  # the SNS envelope
        return parse_notification(str(data["Message"]), _depth=1)
    if data.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return Notification(other_events=1)
    if data.get("Event") == "s3:TestEvent":
        return Notification(test_event=True)
    if "Records" in data:
        records = data["Records"]
        if not isinstance(records, list):
            raise NotificationError("Records is not a list")
        found = [_s3_record(r) for r in records]
        objects = tuple(o for o in found if o is not None)
        return Notification(objects=objects, other_events=len(found) - len(objects))
    if data.get("source") == "aws.s3" and isinstance(data.get("detail"), dict):  # EventBridge
        if data.get("detail-type") != "Object Created":
            return Notification(other_events=1)
        detail = data["detail"]
        try:
            obj = detail["object"]
            # EventBridge sends keys as they are (not URL-encoded)
            s3obj = S3Object(
                bucket=str(detail["bucket"]["name"]),
                key=str(obj["key"]),
                size=int(obj.get("size", 0)),
                etag=str(obj.get("etag", "")).strip('"'),
            )
        except (KeyError, TypeError, ValueError):
            raise NotificationError("an Object Created event without detail.bucket.name / detail.object.key") from None
        return Notification(objects=(s3obj,))
    raise NotificationError("not an S3 event notification (no Records, no s3:TestEvent, no aws.s3 event)")


# --------------------------------------------------------------------------- the queue


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """An ``sqs://`` source: the queue URL, where to reach it, and the drain options."""

    url: str
    region: str | None
    endpoint_url: str | None
    wait_s: int = 20
    visibility_s: int = 300
    max_messages: int = 20_000
    batch: int = 2_000
    max_receives: int = 5
    any_key: bool = False


def parse_queue_uri(uri: str) -> QueueSpec:
    """``sqs://https://sqs.REGION.amazonaws.com/ACCOUNT/NAME[?options]`` (or without ``https://``)."""
    if not uri.startswith(SCHEME):
        raise ConfigError(f"{uri}: not an sqs:// source")
    rest = uri[len(SCHEME) :]
    rest, _, query = rest.partition("?")
    url = rest if rest.startswith(("http://", "https://")) else "https://" + rest
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or parts.path.count("/") < 2:
        raise ConfigError(f"{uri}: expected sqs://https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE")
    match = _REGION_HOST.search(parts.hostname)
    aws_host = parts.hostname.endswith(("amazonaws.com", "amazonaws.com.cn"))
    options: dict[str, Any] = {}
    names = {"wait": "wait_s", "visibility": "visibility_s", "max": "max_messages", "batch": "batch"}
    names["max_receives"] = "max_receives"
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == "keys":
            if value not in ("any", "cloudtrail"):
                raise ConfigError(f"{uri}: keys={value!r}: expected 'cloudtrail' or 'any'")
            options["any_key"] = value == "any"
            continue
        if key not in names:
            raise ConfigError(f"{uri}: unknown option {key!r} (known: {', '.join([*names, 'keys'])})")
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{uri}: {key}={value!r} is not a whole number") from None
        if (
            number < (0 if key == "wait" else 1)
            or (key == "wait" and number > 20)
            or (key == "visibility" and number > MAX_VISIBILITY)
        ):
            raise ConfigError(f"{uri}: {key}={number} is out of range")
        options[names[key]] = number
    return QueueSpec(
        url=url,
        region=match.group(1) if match else None,
        endpoint_url=None if aws_host else f"{parts.scheme}://{parts.netloc}",
        **options,
    )


def make_sqs_client(spec: QueueSpec) -> Any:
    """A boto3 SQS client for the queue (``$AWS_ENDPOINT_URL_SQS`` wins for AWS-hosted URLs)."""
    import os

    import boto3

    endpoint = spec.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_SQS") or None
    return boto3.client("sqs", region_name=spec.region, endpoint_url=endpoint)


@dataclass(kw_only=True)
class DrainReport:
    """What one drain of the queue did (records in = stored + duplicates + filtered + quarantined)."""

    queue: str
    receives: int = 0
    messages: int = 0
    deleted: int = 0
    test_events: int = 0
    other_events: int = 0
    poison: int = 0
    left: int = 0  # not deleted: objects not committed yet, or poison (retried, then DLQ / parked)
    parked: int = 0
    delete_failed: int = 0
    objects: int = 0
    skipped_keys: int = 0  # digests, Insights, other services' logs
    files: int = 0
    already_ingested: int = 0
    records_in: int = 0
    stored: int = 0
    duplicates: int = 0
    filtered: int = 0
    quarantined: int = 0
    visibility_extensions: int = 0
    rounds: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


IngestObjects = Callable[[Sequence[SourceFile]], Any]


@dataclass
class _Held:
    """A received message, what it names, and what became of it."""

    message_id: str
    receipt: str
    receives: int
    sources: list[SourceFile]
    poison: str | None = None


class _Heartbeat:
    """Extends the visibility of held messages every ``interval`` seconds until stopped."""

    def __init__(self, client: Any, url: str, held: Sequence[_Held], visibility_s: int, report: DrainReport) -> None:
        self._client = client
        self._url = url
        self._held = held
        self._visibility = visibility_s
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = max(self._visibility / 3.0, 0.2)
        while not self._stop.wait(interval):
            for chunk in _chunks(self._held, 10):
                entries = [
                    {"Id": str(i), "ReceiptHandle": h.receipt, "VisibilityTimeout": self._visibility}
                    for i, h in enumerate(chunk)
                ]
                try:
                    self._client.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)
                    self._report.visibility_extensions += 1
                except Exception as exc:  # a failed extension only risks a harmless redelivery
                    self._report.errors.append(f"visibility extension: {type(exc).__name__}: {exc}"[:300])


def _chunks(items: Sequence[_Held], size: int) -> Iterator[Sequence[_Held]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def drain_queue(
    uri: str,
    layout: StoreLayout,
    settings: Settings | None = None,
    *,
    endpoint_url: str | None = None,
    client: Any = None,
    ingest_objects: IngestObjects | None = None,
    workers: int | None = None,
) -> DrainReport:
    """Read ``uri`` until it is empty (or its ``max``), ingesting what the messages name; see the module docstring.

    ``endpoint_url`` is the S3 endpoint for the objects (default ``$AWS_ENDPOINT_URL_S3`` / AWS).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    spec = parse_queue_uri(uri)
    started = time.monotonic()
    report = DrainReport(queue=spec.url)
    sqs = client or make_sqs_client(spec)

    def default_ingest(sources: Sequence[SourceFile]) -> Any:
        from trailsight.ingest.pipeline import ingest

        return ingest([], layout, settings, objects=sources, endpoint_url=endpoint_url, workers=workers)

    run_ingest = ingest_objects or default_ingest
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=spec.url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        has_dlq = bool(attributes.get("RedrivePolicy"))
        dry = False
        while report.messages < spec.max_messages and not dry:
            held, dry = _receive_round(sqs, spec, report)
            if not held:
                break
            report.rounds += 1
            _process_round(sqs, spec, layout, held, has_dlq, run_ingest, report)
    except (ClientError, BotoCoreError) as exc:
        raise IngestError(f"{spec.url}: SQS: {exc}") from None
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _receive_round(sqs: Any, spec: QueueSpec, report: DrainReport) -> tuple[list[_Held], bool]:
    """Receive up to ``batch`` messages; also say whether the queue ran dry (no need to ask again)."""
    held: list[_Held] = []
    want = min(spec.batch, spec.max_messages - report.messages)
    while len(held) < want:
        response = sqs.receive_message(
            QueueUrl=spec.url,
            MaxNumberOfMessages=min(10, want - len(held)),
            WaitTimeSeconds=spec.wait_s if not held else min(spec.wait_s, 1),
            VisibilityTimeout=spec.visibility_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        report.receives += 1
        messages = response.get("Messages", [])
        if not messages:
            return held, True
        for message in messages:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            item = _Held(
                message_id=str(message["MessageId"]),
                receipt=str(message["ReceiptHandle"]),
                receives=receives,
                sources=[],
            )
            try:
                notice = parse_notification(message.get("Body", ""))
            except NotificationError as exc:
                item.poison = str(exc)
                report.poison += 1
                report.errors.append(f"message {item.message_id}: {exc}"[:300])
            else:
                report.test_events += int(notice.test_event)
                report.other_events += notice.other_events
                for obj in notice.objects:
                    report.objects += 1
                    if is_cloudtrail_key(obj.key, any_name=spec.any_key):
                        item.sources.append(obj.source())
                    else:
                        report.skipped_keys += 1
            held.append(item)
        report.messages += len(messages)
    return held, False


def _process_round(
    sqs: Any,
    spec: QueueSpec,
    layout: StoreLayout,
    held: list[_Held],
    has_dlq: bool,
    run_ingest: IngestObjects,
    report: DrainReport,
) -> None:
    """Ingest what a round's messages name, then delete the messages whose objects are committed."""
    from trailsight.store import state

    sources = list({s.key: s for h in held for s in h.sources}.values())
    if sources:
        try:
            with _Heartbeat(sqs, spec.url, held, spec.visibility_s, report):
                summary = run_ingest(sources)
        except TrailsightError as exc:
            report.errors.append(f"ingest: {exc}"[:300])
            summary = None
        if summary is not None:
            report.files += int(getattr(summary, "files", 0))
            report.already_ingested += int(getattr(summary, "skipped_files", 0))
            report.records_in += int(getattr(summary, "records", 0))
            report.stored += int(getattr(summary, "new", 0))
            report.duplicates += int(getattr(summary, "duplicates", 0))
            report.filtered += int(getattr(summary, "filtered", 0))
            report.quarantined += int(getattr(summary, "quarantined", 0))
        with state.connect(layout, read_only=True) as con:
            committed = state.known_sources(con, [(s.key, s.size, s.version) for s in sources])
    else:
        committed = set()
    done = [h for h in held if h.poison is None and all(s.key in committed for s in h.sources)]
    stuck = [h for h in held if h.poison is not None or not all(s.key in committed for s in h.sources)]
    for chunk in _chunks(done, 10):
        response = sqs.delete_message_batch(
            QueueUrl=spec.url, Entries=[{"Id": str(i), "ReceiptHandle": h.receipt} for i, h in enumerate(chunk)]
        )
        failed = response.get("Failed", [])
        report.delete_failed += len(failed)
        report.deleted += len(chunk) - len(failed)
    report.left += len(stuck)
    if has_dlq:
        return  # SQS moves them to the dead-letter queue after maxReceiveCount receives
    park = [h for h in stuck if h.poison is not None or h.receives >= spec.max_receives]
    for chunk in _chunks(park, 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h.receipt, "VisibilityTimeout": PARK_SECONDS} for i, h in enumerate(chunk)
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=spec.url, Entries=entries)
        except Exception as exc:  # it then comes back at its usual time: reported again, still no loop
            report.errors.append(f"parking failed: {type(exc).__name__}: {exc}"[:300])
            continue
        report.parked += len(chunk)
        for h in chunk:
            why = h.poison or f"objects not ingested after {h.receives} receives"
            report.errors.append(
                f"message {h.message_id} parked for 6 h (the queue has no dead-letter queue): {why}"[:300]
            )


__all__ = [
    "DrainReport",
    "Notification",
    "NotificationError",
    "QueueSpec",
    "S3Object",
    "drain_queue",
    "make_sqs_client",
    "parse_notification",
    "parse_queue_uri",
]
