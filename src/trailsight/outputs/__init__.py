"""Where findings go: formats and destinations chosen by name, shared by ``watch`` and ``findings export``.

A *format* turns a finding (or a watch alert) into a payload — JSON lines, OCSF, ASFF, CSV, a
Slack or a Teams message (:mod:`trailsight.outputs.formats`). A *destination* delivers payloads —
standard output, a file, a webhook, Security Hub, SNS, EventBridge — as a *sink* that receives
:class:`Alert` objects and returns the ones it could not deliver (the caller dead-letters them).
Both are found by name in one registry (:mod:`trailsight.outputs.registry`), which packages
extend through the ``trailsight.outputs`` entry-point group. ``--output`` names one::

    jsonl | file:PATH | webhook:URL | slack:URL | teams:URL | securityhub[:REGION]
    | sns:TOPIC_ARN | eventbridge[:BUS]      each with ?format=...&min_severity=...

Every network sink shares one set of delivery rules (:mod:`trailsight.outputs.retry`):
batches cut to the API's limits, retries with exponential back-off on throttling, 5xx and
timeouts, a down endpoint skipped for the rest of the cycle, failures dead-lettered.

Delivery is *at least once*: an alert whose delivery succeeded just before the process was
killed may be sent again after a restart. Each alert carries an ``alert_key``
(``<finding id>:<event count>``) so a consumer can drop repeats.
"""

from __future__ import annotations

from trailsight.outputs.base import Alert, DeadLetterFile, Delivery, Sink
from trailsight.outputs.formats import OutputFormat, RenderContext
from trailsight.outputs.jsonl import FileSink, StreamSink
from trailsight.outputs.registry import Destination, OutputDefaults, available, get_format, parse_output, parse_outputs
from trailsight.outputs.retry import RetryPolicy
from trailsight.outputs.routing import FanOutSink, SeverityFloorSink
from trailsight.outputs.webhook import WebhookSink

__all__ = [
    "Alert",
    "DeadLetterFile",
    "Delivery",
    "Destination",
    "FanOutSink",
    "FileSink",
    "OutputDefaults",
    "OutputFormat",
    "RenderContext",
    "RetryPolicy",
    "SeverityFloorSink",
    "Sink",
    "StreamSink",
    "WebhookSink",
    "available",
    "get_format",
    "parse_output",
    "parse_outputs",
]
