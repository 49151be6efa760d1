"""scripts/system-deps, which ``make test`` runs first: install Chromium and Java, or stop with the command.

The script runs under a PATH of stubs only (``id``, ``apt-get``, ``java``), so nothing is installed
and the machine's own browser and Java are out of sight.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "system-deps"


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def _run(
    tmp_path: Path, *, uid: int, apt: bool, java: bool, chromium: bool
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "apt.log"
    _stub(stubs, "id", f"echo {uid}")
    if apt:
        _stub(stubs, "apt-get", f'echo "$*" >> {log}')
    if java:
        _stub(stubs, "java", "exit 0")
    browser = tmp_path / "chromium"
    if chromium:
        _stub(tmp_path, "chromium", "exit 0")
    env = {"PATH": str(stubs), "CHROMIUM": str(browser)}
    proc = subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_nothing_missing_does_nothing(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=0, apt=True, java=True, chromium=True)
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert proc.stdout == proc.stderr == ""


def test_root_with_apt_installs_what_is_missing(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=0, apt=True, java=False, chromium=False)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["update -qq", "install -y -qq chromium default-jre-headless"]
    assert "installing what the tests need: chromium default-jre-headless" in proc.stdout


def test_root_installs_only_the_missing_one(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=0, apt=True, java=True, chromium=False)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["update -qq", "install -y -qq chromium"]


def test_not_root_stops_with_the_command(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, uid=1000, apt=True, java=False, chromium=True)
    assert proc.returncode == 1
    assert calls == []
    assert "sudo apt-get update && sudo apt-get install -y default-jre-headless" in proc.stderr


@pytest.mark.parametrize("uid", [0, 1000])
def test_no_apt_stops_and_says_what(tmp_path: Path, uid: int) -> None:
    proc, _calls = _run(tmp_path, uid=uid, apt=False, java=False, chromium=False)
    assert proc.returncode == 1
    assert "no apt-get" in proc.stderr
    assert "chromium default-jre-headless" in proc.stderr


def test_make_test_checks_the_system_before_anything_else() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under make test
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.splitlines()[0] == "bash scripts/system-deps"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in ci
    assert "make test" in ci
