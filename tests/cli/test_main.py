"""The entry point loads only the command it runs; the root help and ``app`` still have them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trailsight.cli.main import COMMAND_MODULES

FLAWS2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "flaws2_cloud" / "AWSLogs"

_LOADED = (
    "import sys\n"
    "from trailsight.cli.main import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "cli = sorted(m for m in sys.modules if m.startswith('trailsight.cli.') and m != 'trailsight.cli.main')\n"
    "print(' '.join(cli))\n"
)


def _run(*args: str) -> tuple[set[str], str]:
    done = subprocess.run([sys.executable, "-c", _LOADED, *args], capture_output=True, text=True, check=True)
    *shown, loaded = done.stdout.rstrip("\n").split("\n")
    return {m.removeprefix("trailsight.cli.") for m in loaded.split()}, "\n".join(shown)


def test_a_command_loads_only_its_own_module() -> None:
    loaded, shown = _run("--debug", "ingest", "--help")
    assert loaded == {"ingest"}
    assert "--store" in shown
    loaded, _ = _run("findings", "list", "--help")
    assert loaded == {"findings"}


def test_the_root_help_and_a_mistyped_command_see_every_command() -> None:
    loaded, shown = _run("--help")
    assert loaded == set(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        assert name in shown
    done = subprocess.run([sys.executable, "-m", "trailsight", "ingets"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Did you mean 'ingest'?" in done.stderr


def test_app_has_every_command() -> None:
    from trailsight.cli.main import app

    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert names == set(COMMAND_MODULES)


def test_a_run_does_not_import_pandas_yet_pyarrow_still_converts_to_it(tmp_path: Path) -> None:
    """pyarrow's first conversion would import pandas (0.3-0.5 s); the CLI spares it, and pandas
    is still there for whatever asks pyarrow for it later."""
    pytest.importorskip("pandas")
    script = (
        "import sys\n"
        "from trailsight.cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('pandas' in sys.modules)\n"
        "import pyarrow as pa\n"
        "print(type(pa.table({'a': [1, 2]}).to_pandas()).__name__)\n"
    )
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-c", script, "ingest", str(FLAWS2), "--store", str(store), "--workers", "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split()[-2:] == ["False", "DataFrame"]
    assert (store / "lake").is_dir()


def test_a_commands_exit_code_reaches_the_shell(tmp_path: Path) -> None:
    """``watch --once`` exits 3 when ingest quarantined a record (typer.Exit must not be swallowed)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "bad.json").write_text('{"Records": [{"eventVersion": "1.08", "eventTime": "not a time"}]}\n')
    done = subprocess.run(
        [sys.executable, "-m", "trailsight", "watch", str(logs), "--store", str(tmp_path / "s"), "--once"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 3, done.stderr
