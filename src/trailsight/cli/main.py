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
import sys

import typer

from trailsight import __version__
from trailsight.errors import TrailsightError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3

app = typer.Typer(
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
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trailsight {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"trailsight.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"trailsight.cli.{name}":
                continue  # command group not built yet
            raise
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map trailsight errors to one line and exit code 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
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
