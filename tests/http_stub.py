"""Local HTTP servers for sink tests: a receiver (Slack/Teams/webhook) and a flaky proxy in front of moto."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: (status, headers, body) a stub answers with.
Reply = tuple[int, dict[str, str], bytes]


class _Server:
    def __init__(self, handle: Callable[[BaseHTTPRequestHandler, bytes], Reply]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, data = handle(self, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Receiver(_Server):
    """Answers the first ``fail_first`` POSTs with ``status`` (and ``headers``), then 200 ``ok``; keeps bodies."""

    def __init__(self, fail_first: int = 0, status: int = 503, headers: dict[str, str] | None = None) -> None:
        self.fail_first = fail_first
        self.status = status
        self.fail_headers = headers or {}
        self.attempts = 0
        self.bodies: list[bytes] = []
        self.request_headers: list[dict[str, str]] = []
        self.paths: list[str] = []

        def handle(req: BaseHTTPRequestHandler, body: bytes) -> Reply:
            self.attempts += 1
            self.request_headers.append(dict(req.headers))
            self.paths.append(req.path)
            if self.attempts <= self.fail_first:
                return self.status, dict(self.fail_headers), b"busy"
            self.bodies.append(body)
            return 200, {"Content-Type": "text/plain"}, b"ok"

        super().__init__(handle)
        self.url = f"http://127.0.0.1:{self.port}/services/T000/B000/secret"


class FlakyProxy(_Server):
    """Forwards requests to ``upstream`` (moto), except the first ``fail_first``, answered with ``reply``.

    ``fail_first=-1`` fails every request. ``requests`` counts what reached the proxy.
    """

    def __init__(self, upstream: str, reply: Reply, fail_first: int = -1) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.fail_first = fail_first
        self.requests = 0

        def handle(req: BaseHTTPRequestHandler, body: bytes) -> Reply:
            self.requests += 1
            if self.fail_first < 0 or self.requests <= self.fail_first:
                return reply
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
            try:
                headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(req.command, req.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {
                    k: v
                    for k, v in resp.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")
                }
                return resp.status, out, data
            finally:
                conn.close()

        super().__init__(handle)
        self.url = f"http://127.0.0.1:{self.port}"
