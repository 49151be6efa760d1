"""Line sinks: standard output and an append-only file, one payload of the sink's format per line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from trailsight.outputs.base import Alert, Delivery
from trailsight.outputs.formats import JsonlFormat, OutputFormat, RenderContext


class StreamSink:
    """Write one JSON line per alert to a binary stream (standard output by default)."""

    name = "jsonl"

    def __init__(
        self, stream: BinaryIO | None = None, *, fmt: OutputFormat | None = None, ctx: RenderContext | None = None
    ) -> None:
        self._stream = stream
        self.fmt = fmt or JsonlFormat()
        self.ctx = ctx or RenderContext()
        self._header_done = False

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Write and flush every alert; a closed pipe fails the rest."""
        stream = self._stream if self._stream is not None else sys.stdout.buffer
        delivered: list[Alert] = []
        for index, alert in enumerate(alerts):
            try:
                if not self._header_done:
                    stream.write((self.fmt.header() or "").encode("utf-8"))
                    self._header_done = True
                stream.write(self.fmt.line(self.fmt.render(alert, self.ctx)))
                stream.flush()
            except (OSError, ValueError) as exc:
                error = f"stdout: {exc}"
                return Delivery(delivered=delivered, failed=[(a, error) for a in alerts[index:]], attempts=index + 1)
            delivered.append(alert)
        return Delivery(delivered=delivered, attempts=len(alerts))

    def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""


class FileSink:
    """Append one JSON line per alert to a file, fsynced before the alerts count as delivered.

    Delivery into the file is exactly once across kills, with the watch outbox: before a send the
    outbox records :meth:`prepare`'s mark (the file's size), and if the run dies before the outbox
    forgets the alerts, the next run's :meth:`reconcile` finds which of them the file already holds
    whole (they are not written again) and cuts off a line the kill left half written.
    """

    name = "file"

    def __init__(self, path: Path, *, fmt: OutputFormat | None = None, ctx: RenderContext | None = None) -> None:
        self.path = path
        self.fmt = fmt or JsonlFormat()
        self.ctx = ctx or RenderContext()

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Append all alerts in one write; on an I/O error none of them count as delivered."""
        if not alerts:
            return Delivery()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lines = b"".join(self.fmt.line(self.fmt.render(alert, self.ctx)) for alert in alerts)
            with self.path.open("ab") as fh:
                header = self.fmt.header()
                if header is not None and fh.tell() == 0:
                    lines = header.encode("utf-8") + lines
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            error = f"{self.path}: {exc.strerror or exc}"
            return Delivery(failed=[(alert, error) for alert in alerts], attempts=1)
        return Delivery(delivered=list(alerts), attempts=1)

    def prepare(self) -> str:
        """Where the next send starts: ``<size>:<path>`` of the file now (kept by the watch outbox)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        return f"{size}:{self.path}"

    def reconcile(self, alerts: Sequence[Alert], mark: str) -> list[Alert]:
        """The ``alerts`` that a send begun at ``mark`` (:meth:`prepare`) wrote whole into the file.

        A last line the send did not finish is cut off (it was never a delivered alert), so the
        next send appends after whole lines only. A mark of another file means nothing was written.
        """
        size, _, path = mark.partition(":")
        if path != str(self.path) or not size.isdigit():
            return []
        start = int(size)
        try:
            fh = self.path.open("r+b")
        except FileNotFoundError:
            return []
        with fh:
            fh.seek(start)
            tail = fh.read()
            whole = tail.rfind(b"\n") + 1
            if whole < len(tail):
                fh.truncate(start + whole)
                fh.flush()
                os.fsync(fh.fileno())
        # an alert was written when its line (in this sink's format) is there whole; rendering is
        # deterministic (the raise time, not the clock), so any format can be matched this way
        kept = tail[:whole]
        return [alert for alert in alerts if self.fmt.line(self.fmt.render(alert, self.ctx)) in kept]

    def close(self) -> None:
        """Nothing held open between sends."""
