"""``trailsight serve``: the web UI for one store (findings, profiles, pivots, triage)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from trailsight.errors import ConfigError

HELP = (
    "Serve the web UI for the store S: findings list, finding pages, principal profiles, IP / ASN / "
    "access-key pivots and role chains, with triage buttons.\n\n"
    "Listens on 127.0.0.1 unless --host says otherwise; any other address needs --token or --token-file "
    "(checked on every request). Prints the URL to open."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from ``--token`` or the first line of ``--token-file`` (not both)."""
    if token is not None and token_file is not None:
        raise ConfigError("--token and --token-file: give only one")
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"{token_file}: cannot read the token file: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError(f"{token_file}: the token file is empty")
    if token is not None:
        token = token.strip()
        if len(token) < 16:
            raise ConfigError("--token: use at least 16 characters (or let --generate-token make one)")
    return token


def server_url(host: str, port: int, token: str | None) -> str:
    """The URL to open (with ``?token=`` when a token is set; the page then keeps it in a cookie)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only the printed name
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}/"
    return url + (f"?token={token}" if token else "")


def serve_command(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store folder (lake + state.duckdb).")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")] = 8080,
    token: Annotated[
        str | None, typer.Option("--token", help="Require this token on every request (16+ characters).")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Read the token from the first line of this file.")
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules", help="Suppression rules file (TOML) that 'suppress similar' appends to [S/rules.toml]."
        ),
    ] = None,
    generate_token: Annotated[
        bool, typer.Option("--generate-token", help="Make up a random token and print it in the URL.")
    ] = False,
) -> None:
    """Serve the web UI."""
    import uvicorn

    from trailsight.web.app import create_app

    if not store.is_dir():
        raise ConfigError(f"{store}: store folder not found")
    secret = read_token(token, token_file)
    if secret is None and generate_token:
        secret = secrets.token_urlsafe(24)
    if secret is None and not is_loopback(host):
        raise ConfigError(f"--host {host}: listening beyond loopback needs --token, --token-file or --generate-token")
    app = create_app(store, token=secret, rules=rules)
    # Bind before printing the URL: a busy port is a one-line error, not a URL that never answers.
    sock = listen(host.strip("[]"), port)
    port = sock.getsockname()[1]
    typer.echo(f"trailsight: serving {store} at {server_url(host, port, secret)}  (Ctrl-C to stop)")
    sys.stdout.flush()  # the URL must reach a pipe (a supervisor, a test) before the server blocks
    config = uvicorn.Config(app, log_level="warning", server_header=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: any free port) and listening."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"{host}:{port}: cannot listen: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise ConfigError(f"{host}:{port}: cannot listen: {reason}") from None
    sock.set_inheritable(True)
    return sock


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the CLI."""
    app.command("serve", help=HELP)(serve_command)
