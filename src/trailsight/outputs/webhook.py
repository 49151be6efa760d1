"""Webhook sink: POST each alert to a URL, retried with exponential back-off.

The body is the alert in the sink's format: the watch alert JSON by default, a Slack Block
Kit message for ``slack:URL``, a Teams Adaptive Card for ``teams:URL``. An attempt fails on a
connection error, a timeout, HTTP 408, 425, 429 or any 5xx and is retried under the shared
rules of :mod:`trailsight.outputs.retry` (a ``Retry-After`` header lengthens the wait); any
other 4xx is final at once (the receiver refuses the alert; sending it again will not help).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from trailsight import __version__
from trailsight.outputs.base import Alert, Delivery
from trailsight.outputs.formats import JsonlFormat, OutputFormat, RenderContext
from trailsight.outputs.retry import BatchOutcome, RetryPolicy, chunks, deliver_batches

RETRY_STATUSES = frozenset({408, 425, 429})


class WebhookSink:
    """POST every alert to ``url``, one request per alert."""

    def __init__(
        self,
        url: str,
        *,
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        fmt: OutputFormat | None = None,
        ctx: RenderContext | None = None,
        name: str = "webhook",
        **policy_fields: Any,
    ) -> None:
        self.url = url
        # retries=, backoff_s=, max_backoff_s=, timeout_s=, sleep= build the policy when none is given
        self.policy = policy or RetryPolicy(**policy_fields)
        self.headers = dict(headers or {})
        self.fmt = fmt or JsonlFormat()
        self.ctx = ctx or RenderContext()
        self.name = name

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Post the alerts in order under the retry rules."""
        return deliver_batches(chunks(alerts, 1), self._post_one, self.policy)

    def _post_one(self, batch: Sequence[Alert]) -> BatchOutcome:
        body = self.fmt.encode(self.fmt.render(batch[0], self.ctx))
        headers = {"Content-Type": self.fmt.content_type, "User-Agent": f"trailsight/{__version__}", **self.headers}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.policy.timeout_s) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} from {_redact(self.url)}"
            retry_after = _seconds(exc.headers.get("Retry-After") if exc.headers else None)
            exc.close()
            if exc.code in RETRY_STATUSES or exc.code >= 500:
                return BatchOutcome.all_retry(1, error, retry_after)
            return BatchOutcome.all_final(1, error)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return BatchOutcome.all_retry(1, f"{_redact(self.url)}: {reason}")
        return BatchOutcome()

    def close(self) -> None:
        """No connection is kept between posts."""


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _redact(url: str) -> str:
    """The URL without its path's secret part: Slack and Teams webhook URLs are credentials."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if not slash:
        return url
    first = path.split("/", 1)[0]
    return f"{scheme}://{host}/{first}/…" if "/" in path else f"{scheme}://{host}/{path}"


__all__ = ["RETRY_STATUSES", "WebhookSink"]
