"""The ``trailsight`` entry point: the typer app, ``--debug``, and error handling.

User-facing errors (:class:`~trailsight.errors.TrailsightError`) print one line on
stderr and exit 1; ``--debug`` shows the traceback instead. Exit codes:

* 0 — success
* 1 — an error stopped the command
* 2 — bad usage (unknown option, bad value)
* 3 — the command finished but set records aside (quarantined)
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Sequence
from typing import Any

import typer

from trailsight import __version__
from trailsight.errors import TrailsightError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3

_app = typer.Typer(
    name="trailsight",
    help=(
        "Learn how every AWS principal usually behaves in CloudTrail and explain, in plain words, "
        "what it does that it does not usually do.\n\n"
        "Typical flow: `trailsight ingest LOGS --store S`, then `trailsight detect --store S`, "
        "then `trailsight findings list --store S` or `trailsight serve --store S`. "
        "Try it first with `trailsight demo`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Command-group modules; each exposes ``register(app)``.
COMMAND_MODULES = (
    "ingest",
    "simulate",
    "detect",
    "findings",
    "profile",
    "investigate",
    "serve",
    "watch",
    "demo",
    "data",
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trailsight {__version__}")
        raise typer.Exit()


@_app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


_registered: set[str] = set()


def _register_commands(only: str | None = None) -> None:
    """Add the command groups to the app: only ``only`` when given (running one command needs no
    other, and each imports its own libraries), else all of them (the root help lists them all)."""
    for name in COMMAND_MODULES:
        if name in _registered or (only is not None and name != only):
            continue
        try:
            module = importlib.import_module(f"trailsight.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"trailsight.cli.{name}":
                continue  # command group not built yet
            raise
        module.register(_app)
        _registered.add(name)


def _command(argv: Sequence[str]) -> str | None:
    """The command group ``argv`` runs, when its first word (after ``--debug``) names one."""
    for arg in argv:
        if arg != "--debug":
            return arg if arg in COMMAND_MODULES else None
    return None


def __getattr__(name: str) -> Any:
    """``app``: the typer app with every command registered (for tests and embedding)."""
    if name == "app":
        _register_commands()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _NoPandas(importlib.abc.MetaPathFinder):
    """An import hook under which ``import pandas`` fails."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not imported by the trailsight CLI")


def _skip_pandas_probe() -> None:
    """Spare this process pyarrow's import of pandas (slow to import), which nothing here uses.

    pyarrow imports pandas the first time it converts anything, to tell whether the input is a
    pandas object, and remembers the answer. Here that first probe finds no pandas; a later
    call that asks pyarrow for pandas itself (``to_pandas``, ``from_pandas``: pyspark does)
    imports it then, as pyarrow retries for those.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    hook = _NoPandas()
    sys.meta_path.insert(0, hook)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(hook)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map trailsight errors to one line and exit code 1."""
    args = list(argv if argv is not None else sys.argv[1:])
    debug = "--debug" in args
    command = _command(args)
    if command is not None and "--help" not in args:
        _skip_pandas_probe()  # before any command module converts with pyarrow
        from trailsight import allocation

        allocation.tune()  # freed memory is kept for reuse, not faulted in again (trailsight.allocation)
    _register_commands(command)
    try:
        code = _app(args=args, standalone_mode=False)
        # Without standalone mode click returns a typer.Exit's code instead of raising it.
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            sys.exit(code)
    except TrailsightError as exc:
        if debug:
            raise
        typer.echo(f"trailsight: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("trailsight: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click
        from typer._click import exceptions as typer_click  # typer 0.29 raises its own copy of click's

        if isinstance(exc, click.exceptions.ClickException | typer_click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort | typer.Abort):
            sys.exit(EXIT_ERROR)
        if debug:
            raise
        typer.echo(f"trailsight: unexpected error: {exc!r} (run with --debug for the traceback)", err=True)
        sys.exit(EXIT_ERROR)
