"""``trailsight serve``: options, the loopback-or-token rule, and a real server answering."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from trailsight.cli.serve import is_loopback, read_token, server_url
from trailsight.errors import ConfigError

TOKEN = "a-token-long-enough-1234"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("::", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_read_token(tmp_path: Path) -> None:
    assert read_token(None, None) is None
    assert read_token(f"  {TOKEN} ", None) == TOKEN
    f = tmp_path / "token"
    f.write_text(TOKEN + "\nignored\n")
    assert read_token(None, f) == TOKEN
    with pytest.raises(ConfigError, match="give only one"):
        read_token(TOKEN, f)
    with pytest.raises(ConfigError, match="at least 16"):
        read_token("short", None)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_token(None, tmp_path / "empty")
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(None, tmp_path / "missing")


def test_server_url() -> None:
    assert server_url("127.0.0.1", 8080, None) == "http://127.0.0.1:8080/"
    assert server_url("0.0.0.0", 9000, TOKEN) == f"http://127.0.0.1:9000/?token={TOKEN}"
    assert server_url("::1", 80, None) == "http://[::1]:80/"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trailsight", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_non_loopback_host_needs_a_token(tmp_path: Path) -> None:
    r = _cli("serve", "--store", str(tmp_path), "--host", "0.0.0.0")
    assert r.returncode == 1
    assert "needs --token" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_store_is_one_line(tmp_path: Path) -> None:
    r = _cli("serve", "--store", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"trailsight: error: {tmp_path / 'nope'}: store folder not found"


@contextmanager
def _serving(*args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trailsight", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("trailsight: serving "), line + (proc.stderr.read() if proc.stderr else "")
        url = line.split(" at ", 1)[1].split()[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url.split("?")[0] + "healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serve_prints_the_url_and_answers(store: Path) -> None:
    port = free_port()
    with _serving("--store", str(store), "--port", str(port)) as url:
        assert url == f"http://127.0.0.1:{port}/"
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200
        assert "stratus-red-team-ec2-get-password-data-role" in r.text


def test_serve_with_a_token_file(store: Path, tmp_path: Path) -> None:
    port = free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with _serving("--store", str(store), "--port", str(port), "--token-file", str(token_file)) as url:
        assert url == f"http://127.0.0.1:{port}/?token={TOKEN}"
        assert httpx.get(url.split("?")[0], timeout=10).status_code == 401
        with httpx.Client(follow_redirects=True, timeout=10) as browser_like:
            r = browser_like.get(url)  # ?token= sets the cookie, then redirects to the clean URL
            assert r.status_code == 200
            assert str(r.url) == f"http://127.0.0.1:{port}/"
            assert browser_like.get(f"http://127.0.0.1:{port}/healthz").text == "ok"
