"""JSON-lines sinks: standard output and an append-only file."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from trailsight.outputs.base import Alert, Delivery


class StreamSink:
    """Write one JSON line per alert to a binary stream (standard output by default)."""

    name = "jsonl"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Write and flush every alert; a closed pipe fails the rest."""
        stream = self._stream if self._stream is not None else sys.stdout.buffer
        delivered: list[Alert] = []
        for index, alert in enumerate(alerts):
            try:
                stream.write(alert.to_json() + b"\n")
                stream.flush()
            except (OSError, ValueError) as exc:
                error = f"stdout: {exc}"
                return Delivery(delivered=delivered, failed=[(a, error) for a in alerts[index:]], attempts=index + 1)
            delivered.append(alert)
        return Delivery(delivered=delivered, attempts=len(alerts))

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""


class FileSink:
    """Append one JSON line per alert to a file, fsynced before the alerts count as delivered."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Append all alerts in one write; on an I/O error none of them count as delivered."""
        if not alerts:
            return Delivery()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as fh:
                fh.write(b"".join(alert.to_json() + b"\n" for alert in alerts))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            error = f"{self.path}: {exc.strerror or exc}"
            return Delivery(failed=[(alert, error) for alert in alerts], attempts=1)
        return Delivery(delivered=list(alerts), attempts=1)

    def close(self) -> None:
        """Nothing held open between sends."""
