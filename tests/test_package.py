"""The package imports, exposes its version, and its CLI answers --help."""

from __future__ import annotations

import subprocess
import sys

import trailsight


def test_version_is_exposed() -> None:
    assert trailsight.__version__.count(".") == 2


def test_cli_help_lists_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "trailsight", "--help"], capture_output=True, text=True, check=True)
    assert "trailsight" in out.stdout
