"""The delivery rules every sink shares: batches, retries with exponential back-off, a down endpoint.

A sink cuts its alerts into batches (one alert per batch for a webhook, up to 100 for Security
Hub, 10 for EventBridge) and gives :func:`deliver_batches` a function that sends one batch and
says, per alert, whether it got through, failed for good, or may succeed if sent again
(throttling, a 5xx, a timeout). The retryable part of a batch is sent again after
``backoff_s``, then twice that, and so on (capped at ``max_backoff_s``, or the receiver's
``Retry-After`` when it names a longer wait), ``retries`` times. When alerts are still failing
after the last retry the endpoint is taken to be down for the rest of the call: the later
batches fail without being tried, so a dead endpoint costs one back-off sequence per cycle, not
one per alert. Failed alerts are returned; the caller writes them to the dead-letter file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from trailsight.outputs.base import Alert, Delivery


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a sink retries."""

    retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, retry: int, hint: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); ``hint`` is a Retry-After."""
        wait = min(self.backoff_s * 2.0 ** (retry - 1), self.max_backoff_s)
        if hint is not None and hint > wait:
            wait = min(hint, self.max_backoff_s)
        return wait


@dataclass(frozen=True, kw_only=True)
class BatchOutcome:
    """What one attempt at a batch did: by position in the batch, the alerts that did not get through.

    Positions in neither map were delivered. ``retry_after`` is the receiver's hint in seconds.
    """

    final: Mapping[int, str] = field(default_factory=dict)  # position -> error; sending again will not help
    retry: Mapping[int, str] = field(default_factory=dict)  # position -> error; worth another try
    retry_after: float | None = None

    @classmethod
    def all_retry(cls, size: int, error: str, retry_after: float | None = None) -> BatchOutcome:
        """Every alert of the batch failed in a way worth retrying (a timeout, a 5xx, throttling)."""
        return cls(retry=dict.fromkeys(range(size), error), retry_after=retry_after)

    @classmethod
    def all_final(cls, size: int, error: str) -> BatchOutcome:
        """The receiver refused the whole batch."""
        return cls(final=dict.fromkeys(range(size), error))


SendBatch = Callable[[Sequence[Alert]], BatchOutcome]


def deliver_batches(batches: Sequence[Sequence[Alert]], send: SendBatch, policy: RetryPolicy) -> Delivery:
    """Send every batch with ``send`` under ``policy`` (see the module docstring)."""
    delivered: list[Alert] = []
    failed: list[tuple[Alert, str]] = []
    attempts = 0
    endpoint_down: str | None = None
    for batch in batches:
        if endpoint_down is not None:
            failed.extend((alert, f"not tried: {endpoint_down}") for alert in batch)
            continue
        pending: list[Alert] = list(batch)
        errors: list[str] = []
        tries = 0
        outcome = BatchOutcome()
        for attempt in range(policy.retries + 1):
            if attempt:
                policy.sleep(policy.delay(attempt, outcome.retry_after))
            tries += 1
            outcome = send(pending)
            failed.extend((pending[i], error) for i, error in sorted(outcome.final.items()))
            delivered.extend(a for i, a in enumerate(pending) if i not in outcome.final and i not in outcome.retry)
            errors = [outcome.retry[i] for i in sorted(outcome.retry)]
            pending = [pending[i] for i in sorted(outcome.retry)]
            if not pending:
                break
        attempts += tries
        if pending:
            failed.extend(zip(pending, errors, strict=True))
            endpoint_down = f"endpoint down after {tries} attempts ({errors[-1]})"
    return Delivery(delivered=delivered, failed=failed, attempts=attempts)


def pack(alerts: Sequence[Alert], sizes: Sequence[int], max_items: int, max_bytes: int) -> list[list[Alert]]:
    """``alerts`` in consecutive batches of at most ``max_items`` alerts and ``max_bytes`` (by ``sizes``)."""
    batches: list[list[Alert]] = []
    current: list[Alert] = []
    used = 0
    for alert, size in zip(alerts, sizes, strict=True):
        if current and (len(current) >= max_items or used + size > max_bytes):
            batches.append(current)
            current, used = [], 0
        current.append(alert)
        used += size
    if current:
        batches.append(current)
    return batches


def chunks(alerts: Sequence[Alert], size: int) -> list[list[Alert]]:
    """``alerts`` in consecutive batches of at most ``size``."""
    return [list(alerts[i : i + size]) for i in range(0, len(alerts), size)]


__all__ = ["BatchOutcome", "RetryPolicy", "SendBatch", "chunks", "deliver_batches", "pack"]
