"""The smaller items: --status all and unknown statuses, pivots on values with '/', serve on a busy port."""

from __future__ import annotations

import socket
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from trailsight.finding import Finding

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "findings"))
from test_export_formats import make_finding

from trailsight.store.findings import save_findings, set_status
from trailsight.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)


def _finding(fid: str) -> Finding:
    return make_finding(id=fid, first_seen=T0, last_seen=T0 + timedelta(minutes=5), status="Open")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trailsight", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("status")
    save_findings(root, [_finding("aaaa000000000001"), _finding("aaaa000000000002"), _finding("aaaa000000000003")])
    set_status(root, "aaaa000000000002", "Dismissed", "benign")
    set_status(root, "aaaa000000000003", "Malicious", "confirmed")
    return root


@pytest.mark.parametrize("command", ["list", "export"])
def test_status_all_lists_every_finding(store: Path, command: str) -> None:
    fmt = ["--format", "jsonl"]
    r = _cli("findings", command, "--store", str(store), "--status", "all", *fmt)
    assert r.returncode == 0, r.stderr
    ids = sorted(orjson.loads(line)["id"] for line in r.stdout.splitlines() if line.strip())
    assert ids == ["aaaa000000000001", "aaaa000000000002", "aaaa000000000003"]
    r = _cli("findings", command, "--store", str(store), "--status", "dismissed,MALICIOUS", *fmt)
    assert r.returncode == 0, r.stderr
    assert sorted(orjson.loads(line)["id"] for line in r.stdout.splitlines() if line.strip()) == [
        "aaaa000000000002",
        "aaaa000000000003",
    ]


def test_an_unknown_status_is_rejected(store: Path) -> None:
    r = _cli("findings", "list", "--store", str(store), "--status", "Open,Closed")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "trailsight: error: --status 'Open,Closed': unknown status 'Closed'; "
        "expected all or Open, Acknowledged, Dismissed, Malicious, Suppressed"
    ]


@pytest.mark.parametrize("path", ["/ip/10.0.0.1%2F24", "/ip/a/b", "/key/AKIA%2FEXAMPLE", "/key/AKIA/EX/AMPLE"])
def test_pivots_on_values_with_a_slash(store: Path, path: str) -> None:
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    r = client.get(path)
    assert r.status_code == 200, r.text[:300]


def test_serve_on_a_busy_port_says_so_before_printing_a_url(store: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _cli("serve", "--store", str(store), "--port", str(port))
    assert r.returncode == 1
    assert "serving" not in r.stdout
    assert r.stderr.strip().splitlines() == [
        f"trailsight: error: 127.0.0.1:{port}: cannot listen: address already in use"
    ]
