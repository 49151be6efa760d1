"""Where ``trailsight watch`` sends the findings it raises.

A *sink* receives :class:`Alert` objects, one per finding that is new or has grown
since it was last raised, and returns the alerts it could not deliver (the
caller then dead-letters them). Three sinks exist, chosen with ``--output``:

* ``jsonl`` — one JSON line per alert on standard output;
* ``file:PATH`` — one JSON line per alert appended to ``PATH`` (flushed and fsynced);
* ``webhook:URL`` — one HTTP POST of JSON per alert, retried with exponential
  back-off; alerts that never get through go to the dead-letter file.

Delivery is *at least once*: an alert whose delivery succeeded just before the
process was killed may be sent again after a restart. Each alert carries an
``alert_key`` (``<finding id>:<event count>``) so a consumer can drop repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from trailsight.errors import ConfigError
from trailsight.outputs.base import Alert, DeadLetterFile, Delivery, Sink
from trailsight.outputs.jsonl import FileSink, StreamSink
from trailsight.outputs.webhook import WebhookSink


def parse_output(
    spec: str,
    *,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> Sink:
    """Turn ``--output`` (``jsonl``, ``file:PATH`` or ``webhook:URL``) into a sink."""
    if spec in ("jsonl", "stdout", "-"):
        return StreamSink()
    kind, sep, rest = spec.partition(":")
    if sep and kind == "file" and rest:
        return FileSink(Path(rest))
    if sep and kind == "webhook" and rest.startswith(("http://", "https://")):
        return WebhookSink(rest, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, headers=headers)
    raise ConfigError(f"--output {spec!r}: expected 'jsonl', 'file:PATH' or 'webhook:http(s)://...'")


__all__ = [
    "Alert",
    "DeadLetterFile",
    "Delivery",
    "FileSink",
    "Sink",
    "StreamSink",
    "WebhookSink",
    "parse_output",
]
