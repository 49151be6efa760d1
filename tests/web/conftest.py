"""Fixtures for the web UI tests: seeded stores, a TestClient, a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from webseed import hostile_store, seed_store

from trailsight.web.app import create_app

with warnings.catch_warnings():
    # starlette's TestClient warns at import that it prefers the httpx2 package; not ours to fix.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BASE = "http://127.0.0.1"


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A store with the invictus-ir lake and two findings (built once; copy it before writing)."""
    store = tmp_path_factory.mktemp("seeded") / "store"
    store.mkdir()
    events = seed_store(store)
    return store, events


@pytest.fixture
def store(seeded_template: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> Path:
    """A fresh copy of the seeded store for one test."""
    copy = tmp_path / "store"
    shutil.copytree(seeded_template[0], copy)
    return copy


@pytest.fixture
def events(seeded_template: tuple[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The seeded lake's events."""
    return seeded_template[1]


@pytest.fixture(scope="session")
def hostile_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store whose attacker-controlled strings are all hostile, and its finding id."""
    store = tmp_path_factory.mktemp("hostile") / "store"
    store.mkdir()
    return store, hostile_store(store)


def make_client(store: Path, **kwargs: Any) -> TestClient:
    """A TestClient addressing the app as http://127.0.0.1 (a loopback host name)."""
    return TestClient(create_app(store, **kwargs), base_url=BASE)


@pytest.fixture
def client(store: Path) -> TestClient:
    """A TestClient on a fresh copy of the seeded store."""
    return make_client(store)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """The real app under uvicorn in a background thread."""

    def __init__(self, store: Path, **kwargs: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(store, **kwargs), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(store: Path) -> Iterator[LiveServer]:
    """The app on a fresh copy of the seeded store, served by uvicorn on 127.0.0.1."""
    with LiveServer(store) as server:
        yield server
