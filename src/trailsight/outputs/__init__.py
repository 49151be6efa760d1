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

from trailsight.outputs.base import Alert, DeadLetterFile, Delivery, Sink, parse_output
from trailsight.outputs.jsonl import FileSink, StreamSink
from trailsight.outputs.webhook import WebhookSink

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
