"""Webhook sink: POST each alert as JSON, retrying with exponential back-off.

An attempt fails on a connection error, a timeout, HTTP 408, 425, 429 or any 5xx;
it is retried after ``backoff_s``, then twice that, and so on (capped at
``max_backoff_s``), ``retries`` times. Any other 4xx is final at once (the
receiver refuses the alert; sending it again will not help). When one alert
exhausts its retries the endpoint is taken to be down for the rest of the batch:
the remaining alerts fail without being tried, so a dead endpoint costs one
back-off sequence per run rather than one per alert. Failed alerts are returned to
the caller, which writes them to the dead-letter file.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from trailsight import __version__
from trailsight.outputs.base import Alert, Delivery

RETRY_STATUSES = frozenset({408, 425, 429})


class WebhookSink:
    """POST every alert to ``url`` as ``application/json``."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self._sleep = sleep

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Post the alerts in order; see the module docstring for the retry rules."""
        delivered: list[Alert] = []
        failed: list[tuple[Alert, str]] = []
        attempts = 0
        endpoint_down: str | None = None
        for alert in alerts:
            if endpoint_down is not None:
                failed.append((alert, f"not tried: {endpoint_down}"))
                continue
            ok, error, tries, retryable = self._post(alert.to_json())
            attempts += tries
            if ok:
                delivered.append(alert)
                continue
            failed.append((alert, error))
            if retryable:
                endpoint_down = f"endpoint down after {tries} attempts ({error})"
        return Delivery(delivered=delivered, failed=failed, attempts=attempts)

    def _post(self, body: bytes) -> tuple[bool, str, int, bool]:
        """Return (delivered, last error, attempts, whether the last error was retryable)."""
        headers = {"Content-Type": "application/json", "User-Agent": f"trailsight/{__version__}", **self.headers}
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                    response.read()
                return True, "", attempt + 1, False
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} from {self.url}"
                exc.close()
                if not (exc.code in RETRY_STATUSES or exc.code >= 500):
                    return False, error, attempt + 1, False
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                error = f"{self.url}: {reason}"
        return False, error, self.retries + 1, True

    def close(self) -> None:
        """No connection is kept between posts."""
