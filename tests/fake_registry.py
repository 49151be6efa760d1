"""A fake npm registry on 127.0.0.1: package metadata and tarballs, as ``trailsight data`` reads them."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from trailsight.refdata import DATASETS, Dataset


def package_tarball(files: Mapping[str, bytes]) -> bytes:
    """A gzip tarball with ``files`` under ``package/``, as ``npm pack`` makes them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def sri(data: bytes) -> str:
    """The Subresource Integrity string npm publishes for ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def dataset_files(ds: Dataset, version: str) -> dict[str, bytes]:
    """Small stand-in contents for every file of ``ds`` (tagged with the version)."""
    return {name: f"{ds.name} {name} {version}\n".encode() for name in ds.files}


@dataclass
class FakeRegistry:
    """Serves ``/<package>/<version|latest>`` documents and ``/tarballs/<n>.tgz``; counts requests."""

    url: str = ""
    #: (package, version) → tarball bytes
    tarballs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    #: (package, version) → integrity to publish (default: the tarball's real one)
    integrity: dict[tuple[str, str], str] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def publish(self, ds: Dataset, version: str, files: Mapping[str, bytes] | None = None) -> bytes:
        """Add ``ds`` at ``version`` (default contents from :func:`dataset_files`); it becomes latest."""
        blob = package_tarball(files if files is not None else dataset_files(ds, version))
        self.tarballs[(ds.package, version)] = blob
        self.latest[ds.package] = version
        return blob

    def document(self, package: str, tag: str) -> bytes | None:
        version = self.latest.get(package) if tag == "latest" else tag
        key = (package, version or "")
        if key not in self.tarballs:
            return None
        n = list(self.tarballs).index(key)
        doc = {
            "name": package,
            "version": version,
            "license": "SEE LICENSE IN DBIP-LICENSE (CC-BY-4.0)",
            "dist": {
                "tarball": f"{self.url}/tarballs/{n}.tgz",
                "integrity": self.integrity.get(key, sri(self.tarballs[key])),
            },
        }
        return orjson.dumps(doc)


@contextmanager
def serve_registry(registry: FakeRegistry) -> Iterator[FakeRegistry]:
    """Run ``registry`` on an ephemeral port of 127.0.0.1 for the duration of the block."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            registry.requests.append(self.path)
            body: bytes | None = None
            if self.path.startswith("/tarballs/"):
                n = int(self.path.removeprefix("/tarballs/").removesuffix(".tgz"))
                blobs = list(registry.tarballs.values())
                body = blobs[n] if n < len(blobs) else None
            else:
                package, _, tag = self.path.lstrip("/").rpartition("/")
                body = registry.document(package, tag)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    registry.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish_pinned(registry: FakeRegistry) -> None:
    """Publish every dataset at its pinned version."""
    for ds in DATASETS:
        registry.publish(ds, ds.version)
