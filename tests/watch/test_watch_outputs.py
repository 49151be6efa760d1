"""Sinks: a webhook against a real HTTP server on 127.0.0.1, files, standard output, dead letters."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailsight.errors import ConfigError
from trailsight.outputs import Alert, DeadLetterFile, FileSink, StreamSink, WebhookSink, parse_output


def alert(n: int = 1, count: int = 3) -> Alert:
    return Alert(
        finding_id=f"ts-{n:04d}",
        action="new",
        event_count=count,
        previous_count=0,
        run_id="watch-test",
        raised_at=datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        finding={"id": f"ts-{n:04d}", "title": "<script>x</script>", "count": count},
    )


class Receiver:
    """An HTTP server that answers ``fail_first`` POSTs with ``status``, then 200."""

    def __init__(self, fail_first: int, status: int = 503) -> None:
        self.fail_first = fail_first
        self.status = status
        self.attempts = 0
        self.accepted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                receiver.headers.append(dict(self.headers))
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(receiver.status)
                    self.end_headers()
                    return
                receiver.accepted.append(orjson.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    rec = Receiver(fail_first=2)
    yield rec
    rec.close()


def test_webhook_retries_with_backoff_then_delivers(flaky: Receiver) -> None:
    sleeps: list[float] = []
    sink = WebhookSink(flaky.url, retries=4, backoff_s=0.5, sleep=sleeps.append, headers={"Authorization": "Bearer t"})
    result = sink.send([alert(1), alert(2)])
    assert [a.finding_id for a in result.delivered] == ["ts-0001", "ts-0002"]
    assert result.failed == []
    assert flaky.attempts == 4  # two refusals, then one POST per alert
    assert sleeps == [0.5, 1.0]  # exponential back-off
    assert [body["finding_id"] for body in flaky.accepted] == ["ts-0001", "ts-0002"]
    assert flaky.accepted[0]["alert_key"] == "ts-0001:3"
    assert flaky.accepted[0]["finding"]["title"] == "<script>x</script>"
    assert flaky.headers[0]["Authorization"] == "Bearer t"
    assert flaky.headers[0]["Content-Type"] == "application/json"


def test_webhook_that_never_accepts_goes_to_dead_letter(tmp_path: Path) -> None:
    rec = Receiver(fail_first=10_000, status=500)
    try:
        sleeps: list[float] = []
        sink = WebhookSink(rec.url, retries=3, backoff_s=1.0, max_backoff_s=3.0, sleep=sleeps.append)
        result = sink.send([alert(1), alert(2), alert(3)])
    finally:
        rec.close()
    assert result.delivered == []
    assert [a.finding_id for a, _ in result.failed] == ["ts-0001", "ts-0002", "ts-0003"]
    assert "HTTP 500" in result.failed[0][1]
    assert result.failed[1][1].startswith("not tried: endpoint down after 4 attempts")
    assert rec.attempts == 4  # the first alert's tries only: the endpoint is then taken as down
    assert sleeps == [1.0, 2.0, 3.0]  # doubled, capped
    dead = DeadLetterFile(tmp_path / "dead" / "letters.jsonl")
    dead.write(result.failed, sink="webhook")
    lines = [orjson.loads(line) for line in dead.path.read_bytes().splitlines()]
    assert [line["alert"]["finding_id"] for line in lines] == ["ts-0001", "ts-0002", "ts-0003"]
    assert lines[0]["sink"] == "webhook"
    assert "HTTP 500" in lines[0]["error"]
    assert Alert.from_dict(lines[0]["alert"]) == alert(1)


def test_webhook_client_error_is_final_without_retry() -> None:
    rec = Receiver(fail_first=1, status=400)
    try:
        sleeps: list[float] = []
        result = WebhookSink(rec.url, retries=5, sleep=sleeps.append).send([alert(1), alert(2)])
    finally:
        rec.close()
    assert [a.finding_id for a, _ in result.failed] == ["ts-0001"]
    assert [a.finding_id for a in result.delivered] == ["ts-0002"]  # a refusal is not an outage
    assert sleeps == []


def test_webhook_connection_refused_fails_fast(tmp_path: Path) -> None:
    rec = Receiver(fail_first=0)
    url = rec.url
    rec.close()  # nothing listens there any more
    result = WebhookSink(url, retries=2, backoff_s=0.01, timeout_s=2).send([alert(1)])
    assert result.delivered == []
    assert result.attempts == 3


def test_file_sink_appends_json_lines(tmp_path: Path) -> None:
    sink = parse_output(f"file:{tmp_path / 'out' / 'alerts.jsonl'}")
    assert isinstance(sink, FileSink)
    assert sink.send([alert(1)]).delivered == [alert(1)]
    assert sink.send([alert(2, count=5)]).delivered == [alert(2, count=5)]
    lines = [orjson.loads(line) for line in sink.path.read_bytes().splitlines()]
    assert [line["alert_key"] for line in lines] == ["ts-0001:3", "ts-0002:5"]
    assert lines[0]["type"] == "trailsight.finding"
    assert lines[0]["raised_at"] == "2026-01-05T12:00:00Z"


def test_stream_sink_writes_lines() -> None:
    buf = io.BytesIO()
    StreamSink(buf).send([alert(1), alert(2)])
    assert [orjson.loads(line)["finding_id"] for line in buf.getvalue().splitlines()] == ["ts-0001", "ts-0002"]


@pytest.mark.parametrize("spec", ["kafka:topic", "file:", "webhook:ftp://x", "webhook:"])
def test_bad_output_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="--output"):
        parse_output(spec)
