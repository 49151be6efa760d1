"""AWS sinks: Security Hub (``BatchImportFindings``), SNS (``Publish``), EventBridge (``PutEvents``).

Each cuts its alerts into the batches the API takes and hands them to the shared delivery
rules of :mod:`trailsight.outputs.retry` — the same retries, back-off and dead letters as the
webhook. botocore's own retries are switched off so the two do not multiply. An error is worth
retrying when AWS throttles (``ThrottlingException``, ``TooManyRequestsException``, HTTP 429 …),
answers 5xx, or cannot be reached; anything else (``AccessDenied``, a validation error) is
final for the alerts it names. Partial failures are read per alert: ``FailedFindings`` of
Security Hub, the ``ErrorCode`` of each PutEvents entry.

* **Security Hub**: batches of at most 100 findings and 6 MB, no finding over 240 KB (the
  API's limits). The ASFF ``Id`` is stable per finding and ``UpdatedAt`` is the raise time,
  so an ``update`` alert updates the same Security Hub finding.
* **SNS**: one ``Publish`` per alert; the message is the sink's format as JSON, with message
  attributes ``severity`` (``High`` …), ``severity_score`` (number), ``action``, ``finding_type``
  and ``account_id`` for subscription filter policies. FIFO topics get the finding id as the
  message group and the ``alert_key`` as the de-duplication id.
* **EventBridge**: ``PutEvents`` with at most 10 entries and 256 KB a call; ``Source`` is
  ``trailsight`` (or ``source=``), ``DetailType`` is ``trailsight finding <finding_type>``
  (e.g. ``trailsight finding Persistence:IAMUser/AnomalousBehavior``) so rules can match a kind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from trailsight.errors import ConfigError
from trailsight.findings.export_common import clip
from trailsight.outputs.base import Alert, Delivery
from trailsight.outputs.formats import AsffFormat, JsonlFormat, OutputFormat, RenderContext
from trailsight.outputs.retry import BatchOutcome, RetryPolicy, chunks, deliver_batches, pack

SECURITYHUB_MAX_FINDINGS = 100
SECURITYHUB_MAX_BATCH_BYTES = 6 * 1024 * 1024
SECURITYHUB_MAX_FINDING_BYTES = 240 * 1024
SNS_MAX_BYTES = 256 * 1024
EVENTBRIDGE_MAX_ENTRIES = 10
EVENTBRIDGE_MAX_BYTES = 256 * 1024

THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "InternalFailure",
        "InternalError",
        "InternalException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottlingException",
    }
)


def make_client(service: str, *, region: str | None, endpoint_url: str | None, policy: RetryPolicy) -> Any:
    """A boto3 client with botocore's retries off (ours apply) and the policy's timeout."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=policy.timeout_s,
        read_timeout=policy.timeout_s,
    )
    url = endpoint_url or os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client(service, region_name=region, endpoint_url=url or None, config=config)


def classify(exc: Exception) -> tuple[str, bool]:
    """(error text, whether retrying may help) for an exception raised by a boto3 call."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{code or 'HTTP ' + str(status)}: {err.get('Message', '')}".strip().rstrip(":")
        return text, code in THROTTLE_CODES or status == 429 or status >= 500
    if isinstance(exc, BotoCoreError | ResponseParserError):
        # unreachable, timed out, or an answer that is not the service's (a proxy's 503 page)
        return " ".join(str(exc).split())[:300], True
    return f"{type(exc).__name__}: {exc}", False


def _severity(alert: Alert) -> tuple[str, float]:
    label = str(alert.finding.get("severity_label") or "Unknown")
    try:
        score = float(alert.finding.get("severity") or 0.0)
    except (TypeError, ValueError):
        score = 0.0
    return label, score


def _render_all(
    fmt: OutputFormat, ctx: RenderContext, alerts: Sequence[Alert]
) -> tuple[list[tuple[Alert, Any]], list[tuple[Alert, str]]]:
    """Each alert with its payload, and the alerts that cannot be rendered (final failures)."""
    ok: list[tuple[Alert, Any]] = []
    bad: list[tuple[Alert, str]] = []
    for alert in alerts:
        try:
            ok.append((alert, fmt.render(alert, ctx)))
        except (KeyError, ValueError, TypeError) as exc:
            bad.append((alert, f"cannot render as {fmt.name}: {type(exc).__name__}: {exc}"))
    return ok, bad


#: How much of each list a finding keeps when its message must shrink to fit SNS / EventBridge.
_SLIM_LISTS: tuple[tuple[str, int], ...] = (
    ("timeline", 20),
    ("event_ids", 200),
    ("usual_apis_principal", 20),
    ("usual_apis_account", 20),
    ("networks", 20),
    ("unusual", 20),
    ("anomalous_apis", 50),
)


def fit(fmt: OutputFormat, ctx: RenderContext, alert: Alert, payload: Any, limit: int) -> bytes | None:
    """``payload`` encoded, or — when over ``limit`` bytes — the alert re-rendered with its long
    lists cut (``"truncated": true`` in the finding); None when even that does not fit."""
    body = fmt.encode(payload)
    if len(body) <= limit:
        return body
    slim = dict(alert.finding)
    for key, keep in _SLIM_LISTS:
        value = slim.get(key)
        if isinstance(value, list) and len(value) > keep:
            slim[key] = value[:keep]
    slim["truncated"] = True
    try:
        body = fmt.encode(fmt.render(replace(alert, finding=slim), ctx))
    except (KeyError, ValueError, TypeError):
        return None
    return body if len(body) <= limit else None


def _merge(first: Delivery, bad: list[tuple[Alert, str]]) -> Delivery:
    return Delivery(delivered=first.delivered, failed=[*bad, *first.failed], attempts=first.attempts)


class _AwsSink:
    """What the AWS sinks share: the lazily made client, one guarded call, per-item failures."""

    service: ClassVar[str] = ""

    def __init__(
        self,
        *,
        fmt: OutputFormat,
        region: str | None,
        endpoint_url: str | None,
        policy: RetryPolicy | None,
        ctx: RenderContext | None,
        client: Any,
    ) -> None:
        self.fmt = fmt
        self.ctx = ctx or RenderContext(region=region)
        self.policy = policy or RetryPolicy()
        self._region = region
        self._endpoint_url = endpoint_url
        self._client = client
        self.calls = 0

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use."""
        if self._client is None:
            self._client = make_client(
                self.service,
                region=self._region or self.ctx.aws_region,
                endpoint_url=self._endpoint_url,
                policy=self.policy,
            )
        return self._client

    def _call(self, size: int, operation: Callable[[], Any]) -> tuple[Any, BatchOutcome | None]:
        """Run one API call for a batch of ``size``: (response, None), or (None, how the batch failed)."""
        self.calls += 1
        try:
            return operation(), None
        except Exception as exc:
            error, retry = classify(exc)
            return None, BatchOutcome.all_retry(size, error) if retry else BatchOutcome.all_final(size, error)

    @staticmethod
    def _item_failures(failures: Iterable[tuple[int, str, str]]) -> BatchOutcome:
        """(position, error code, message) of the items a call refused: throttled ones are retried."""
        final: dict[int, str] = {}
        again: dict[int, str] = {}
        for index, code, message in failures:
            (again if code in THROTTLE_CODES else final)[index] = f"{code}: {message}"
        return BatchOutcome(final=final, retry=again)

    def close(self) -> None:
        """Nothing to release."""


class SecurityHubSink(_AwsSink):
    """Import alerts into Security Hub as ASFF findings, up to 100 a call."""

    name = "securityhub"
    service = "securityhub"

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        policy: RetryPolicy | None = None,
        ctx: RenderContext | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(
            fmt=AsffFormat(), region=region, endpoint_url=endpoint_url, policy=policy, ctx=ctx, client=client
        )

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Render every alert as ASFF, cut the batches at the API's limits and import them."""
        rendered, bad = _render_all(self.fmt, self.ctx, alerts)
        payloads: dict[str, Any] = {}
        sizes: dict[str, int] = {}
        fits: list[Alert] = []
        for alert, finding in rendered:
            size = len(self.fmt.encode(finding))
            if size > SECURITYHUB_MAX_FINDING_BYTES:
                bad.append((alert, f"ASFF finding is {size} bytes, over Security Hub's 240 KB"))
                continue
            payloads[alert.alert_key] = finding
            sizes[alert.alert_key] = size
            fits.append(alert)
        batches = pack(
            fits, [sizes[a.alert_key] + 1 for a in fits], SECURITYHUB_MAX_FINDINGS, SECURITYHUB_MAX_BATCH_BYTES
        )

        def import_batch(batch: Sequence[Alert]) -> BatchOutcome:
            findings = [payloads[a.alert_key] for a in batch]
            response, failed = self._call(len(batch), lambda: self.client.batch_import_findings(Findings=findings))
            if failed is not None:
                return failed
            position = {f["Id"]: i for i, f in enumerate(findings)}
            return self._item_failures(
                (position[str(f.get("Id"))], str(f.get("ErrorCode", "")), str(f.get("ErrorMessage", "")))
                for f in response.get("FailedFindings", ())
                if str(f.get("Id")) in position
            )

        return _merge(deliver_batches(batches, import_batch, self.policy), bad)


class SnsSink(_AwsSink):
    """Publish each alert to an SNS topic."""

    name = "sns"
    service = "sns"

    def __init__(
        self,
        topic_arn: str,
        *,
        fmt: OutputFormat | None = None,
        endpoint_url: str | None = None,
        policy: RetryPolicy | None = None,
        ctx: RenderContext | None = None,
        client: Any = None,
    ) -> None:
        parts = topic_arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns":
            raise ConfigError(f"--output sns:{topic_arn}: expected a topic ARN arn:aws:sns:REGION:ACCOUNT:NAME")
        self.topic_arn = topic_arn
        super().__init__(
            fmt=fmt or JsonlFormat(),
            region=parts[3],  # the topic's region
            endpoint_url=endpoint_url,
            policy=policy,
            ctx=ctx or RenderContext(),
            client=client,
        )

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """One Publish per alert, under the shared retry rules."""
        rendered, bad = _render_all(self.fmt, self.ctx, alerts)
        bodies: dict[str, str] = {}
        for alert, payload in rendered:
            body = fit(self.fmt, self.ctx, alert, payload, SNS_MAX_BYTES)
            if body is None:
                bad.append((alert, "message is over SNS's 256 KB even with the finding's lists cut"))
            else:
                bodies[alert.alert_key] = body.decode("utf-8")
        fifo = self.topic_arn.endswith(".fifo")

        def publish(batch: Sequence[Alert]) -> BatchOutcome:
            alert = batch[0]
            label, score = _severity(alert)
            attributes = {
                "severity": {"DataType": "String", "StringValue": label},
                "severity_score": {"DataType": "Number", "StringValue": f"{score:g}"},
                "action": {"DataType": "String", "StringValue": alert.action},
                "finding_type": {"DataType": "String", "StringValue": str(alert.finding.get("finding_type") or "none")},
                "account_id": {"DataType": "String", "StringValue": str(alert.finding.get("account_id") or "none")},
            }
            subject = clip(f"trailsight {label}: {alert.finding.get('title') or alert.finding_id}", 100)
            request: dict[str, Any] = {
                "TopicArn": self.topic_arn,
                "Message": bodies[alert.alert_key],
                "Subject": "".join(c if " " <= c <= "~" else "?" for c in subject),
                "MessageAttributes": attributes,
            }
            if fifo:
                request["MessageGroupId"] = alert.finding_id
                request["MessageDeduplicationId"] = alert.alert_key.replace(":", "-")
            _, failed = self._call(1, lambda: self.client.publish(**request))
            return failed or BatchOutcome()

        todo = [a for a, _ in rendered if a.alert_key in bodies]
        return _merge(deliver_batches(chunks(todo, 1), publish, self.policy), bad)


class EventBridgeSink(_AwsSink):
    """Put each alert on an EventBridge bus, 10 entries a call."""

    name = "eventbridge"
    service = "events"

    def __init__(
        self,
        bus: str = "default",
        *,
        source: str = "trailsight",
        fmt: OutputFormat | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        policy: RetryPolicy | None = None,
        ctx: RenderContext | None = None,
        client: Any = None,
    ) -> None:
        self.bus = bus or "default"
        if self.bus.startswith("arn:"):
            parts = self.bus.split(":")
            if len(parts) != 6 or parts[2] != "events":
                raise ConfigError(
                    f"--output eventbridge:{bus}: expected a bus name or arn:aws:events:REGION:ACCOUNT:event-bus/NAME"
                )
            region = region or parts[3]
        self.source = source
        super().__init__(
            fmt=fmt or JsonlFormat(), region=region, endpoint_url=endpoint_url, policy=policy, ctx=ctx, client=client
        )

    @staticmethod
    def detail_type(alert: Alert) -> str:
        """``trailsight finding <finding_type>``: one detail-type per kind of finding."""
        kind = str(alert.finding.get("finding_type") or "Unusual")
        return clip(f"trailsight finding {kind}", 128)

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """PutEvents in calls of at most 10 entries and 256 KB."""
        rendered, bad = _render_all(self.fmt, self.ctx, alerts)
        entries: dict[str, dict[str, Any]] = {}
        sizes: dict[str, int] = {}
        todo: list[Alert] = []
        overhead = 14 + len(self.source) + 128
        for alert, payload in rendered:
            wrapped = payload if isinstance(payload, dict) else {"payload": payload}
            body = fit(self.fmt, self.ctx, alert, wrapped, EVENTBRIDGE_MAX_BYTES - overhead)
            if body is None:
                bad.append((alert, "event is over EventBridge's 256 KB even with the finding's lists cut"))
                continue
            detail = body.decode("utf-8")
            entry = {
                "Source": self.source,
                "DetailType": self.detail_type(alert),
                "Detail": detail,
                "EventBusName": self.bus,
                "Resources": [],
            }
            # EventBridge counts Source, DetailType, Detail and Resources towards the 256 KB.
            size = len(body) + len(str(entry["DetailType"])) + len(self.source) + 14
            entries[alert.alert_key] = entry
            sizes[alert.alert_key] = size
            todo.append(alert)
        batches = pack(todo, [sizes[a.alert_key] for a in todo], EVENTBRIDGE_MAX_ENTRIES, EVENTBRIDGE_MAX_BYTES)

        def put(batch: Sequence[Alert]) -> BatchOutcome:
            chosen = [entries[a.alert_key] for a in batch]
            response, failed = self._call(len(batch), lambda: self.client.put_events(Entries=chosen))
            if failed is not None:
                return failed
            return self._item_failures(
                (index, str(r["ErrorCode"]), str(r.get("ErrorMessage", "")))
                for index, r in enumerate(response.get("Entries", ()))
                if r.get("ErrorCode")
            )

        return _merge(deliver_batches(batches, put, self.policy), bad)


__all__ = [
    "EVENTBRIDGE_MAX_ENTRIES",
    "SECURITYHUB_MAX_BATCH_BYTES",
    "SECURITYHUB_MAX_FINDINGS",
    "EventBridgeSink",
    "SecurityHubSink",
    "SnsSink",
    "classify",
    "make_client",
]
