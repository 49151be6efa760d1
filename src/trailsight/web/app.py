"""The web UI: server-rendered pages (FastAPI + Jinja2) with htmx for partial updates.

Pages: the findings list (``/``), a finding (``/findings/{id}``), a principal's profile
(``/principal?arn=``), pivots on an IP (``/ip/{ip}``), an ASN (``/asn/{n}``), an access key
(``/key/{id}``) and a role's AssumeRole chain (``/role?arn=``). Triage (acknowledge, dismiss
as benign, mark malicious, reopen) and "suppress similar" are POSTs.

Security model (CloudTrail strings are attacker-controlled; see docs/web.md):

* Jinja autoescaping on every template; no user value is ever marked safe.
* A strict Content-Security-Policy: scripts and styles only from ``/static`` (no inline
  script, no eval: htmx runs with ``allowEval`` off), no framing, forms post only here.
* With a token, every request must carry it (``Authorization: Bearer``, ``X-Trailsight-Token``
  or the ``trailsight_token`` cookie, which ``?token=`` sets once); 401 when missing, 403 when
  wrong. Without a token the server answers only requests addressed to a loopback host name
  (no DNS rebinding).
* Every POST needs the per-process CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``) and, when the browser sends one, a same-origin ``Origin``; otherwise 403.
* The state database is opened read-only per request, and read-write only for the moment a
  triage verdict is written, so ``serve`` and ``watch`` can run side by side.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from trailsight import __version__
from trailsight.errors import StoreError
from trailsight.web.pages import ROUTERS
from trailsight.web.site import HERE, Site

TOKEN_COOKIE = "trailsight_token"  # noqa: S105 - a cookie name, not a secret
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(
    store: Path,
    *,
    token: str | None = None,
    rules: Path | None = None,
    allowed_hosts: tuple[str, ...] | None = None,
) -> FastAPI:
    """Build the web UI for the store folder ``store``.

    ``token``: required on every request when set (use it whenever the server listens on
    anything but loopback). ``rules``: the TOML suppression-rules file "suppress similar"
    appends to (default ``S/rules.toml``). ``allowed_hosts``: host names accepted in the
    ``Host`` header when no token is set (default: loopback names only).
    """
    store = Path(store)
    rules_file = rules if rules is not None else store / "rules.toml"
    site = Site(store, rules_file, secrets.token_urlsafe(32))
    hosts = tuple(h.lower() for h in (allowed_hosts or LOOPBACK_HOSTS))
    app = FastAPI(title="trailsight", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site

    # ------------------------------------------------------------------ middleware

    @app.middleware("http")
    async def security(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await _guard(request, call_next)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if token is None:
            host = (request.headers.get("host") or "").lower()
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name not in hosts:
                return PlainTextResponse("trailsight: unknown host name; open it as http://127.0.0.1", 403)
        else:
            given_query = request.query_params.get("token")
            if given_query is not None:
                if not hmac.compare_digest(given_query.encode(), token.encode()):
                    return PlainTextResponse("trailsight: wrong token", 403)
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                path = "/" + request.url.path.lstrip("/")  # never "//host": no open redirect
                target = path + ("?" + urlencode(rest) if rest else "")
                redirect = RedirectResponse(target, status_code=303)
                redirect.set_cookie(
                    TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
                )
                return redirect
            given = _request_token(request)
            if given is None:
                return PlainTextResponse(
                    "trailsight: token required (open the URL printed by `trailsight serve`)",
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not hmac.compare_digest(given.encode(), token.encode()):
                return PlainTextResponse("trailsight: wrong token", 403)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
                return PlainTextResponse("trailsight: cross-origin request refused", 403)
        return await call_next(request)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> HTMLResponse:
        return site.render(request, "error.html", 503, title="Store unavailable", message=str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403) or request.headers.get("hx-request"):
            return PlainTextResponse(str(exc.detail), exc.status_code)
        title = f"Error {exc.status_code}"
        return site.render(request, "error.html", exc.status_code, title=title, message=str(exc.detail))

    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    return app


def _request_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    header = request.headers.get("x-trailsight-token")
    if header is not None:
        return header
    return request.cookies.get(TOKEN_COOKIE)


__all__ = ["create_app"]
