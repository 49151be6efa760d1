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
import ipaddress
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import duckdb
from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from trailsight import __version__
from trailsight.errors import ConfigError, StoreError
from trailsight.finding import CONFIDENCE_LABELS, SEVERITY_LABELS, STATUSES, TACTICS
from trailsight.findings.names import short_arn
from trailsight.store import findings as findings_store
from trailsight.web import queries
from trailsight.web.rules import SCOPES, append_rule, similar_rule

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "trailsight_token"  # noqa: S105 - a cookie name, not a secret
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ACTIVE_STATUSES = "Open,Acknowledged,Malicious"
ACTIONS = {"ack": "Acknowledged", "dismiss": "Dismissed", "malicious": "Malicious", "reopen": "Open"}

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
SORTS = {"risk": "Risk", "severity": "Severity", "time": "Last seen", "first_seen": "First seen"}


class _ReadWriteLock:
    """Many readers or one writer, within this process.

    DuckDB refuses a read-write connection to a file that this process also has open
    read-only, so the brief feedback writes wait for the page reads in flight.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._readers:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


# --------------------------------------------------------------------------- template helpers


def _parse_dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    text = str(value)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fmt_time(value: Any, seconds: bool = True) -> str:
    """``2023-07-10 12:11:15 UTC`` from a datetime or ISO string ('' when empty)."""
    parsed = _parse_dt(value)
    if parsed is None:
        return "" if value in (None, "") else str(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def clip(value: Any, limit: int = 160) -> str:
    """``value`` cut to ``limit`` characters with an ellipsis (escaped later by autoescape)."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_mid(value: Any, limit: int = 90) -> str:
    """``value`` cut in the middle to ``limit`` characters (keeps the distinguishing end of user agents)."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


_SOFT_BREAK = re.compile(r"(?<=[:/._-])(?=.)")
_CAMEL_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_RUN = 24  # longest run of characters left without a break opportunity


def soft_breaks(value: Any, camel: bool = False) -> Markup:
    """``value`` escaped, with ``<wbr>`` where a name may wrap: after ``:`` ``/`` ``.`` ``_`` ``-``, with
    ``camel`` between the words of a CamelCase name, and every 24 characters of a longer unbroken run.

    Styled ``overflow-wrap: break-word`` (class ``names``), so names wrap there and not mid-word;
    a hostile 100 kB value still cannot widen the page.
    """
    text = "" if value is None else str(value)
    pieces = _SOFT_BREAK.split(text)
    if camel:
        pieces = [p for piece in pieces for p in _CAMEL_BREAK.split(piece)]
    runs = [piece[i : i + _RUN] for piece in pieces for i in range(0, max(len(piece), 1), _RUN)]
    return Markup("<wbr>").join(escape(run) for run in runs)


def number(value: Any) -> str:
    """``12,345``."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def _slug(value: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(value or "none").lower()).strip("-") or "none"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        {
            "when": fmt_time,
            "short_arn": short_arn,
            "clip": clip,
            "clip_mid": clip_mid,
            "number": number,
            "slug": _slug,
            "soft_breaks": soft_breaks,
        }
    )
    env.globals.update(
        {
            "TACTICS": TACTICS,
            "SEVERITY_LABELS": SEVERITY_LABELS,
            "CONFIDENCE_LABELS": CONFIDENCE_LABELS,
            "STATUSES": STATUSES,
            "SORTS": SORTS,
            "version": __version__,
        }
    )
    return env


# --------------------------------------------------------------------------- the app


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
    env = _environment()
    csrf_token = secrets.token_urlsafe(32)
    hosts = tuple(h.lower() for h in (allowed_hosts or LOOPBACK_HOSTS))
    lock = _ReadWriteLock()
    app = FastAPI(title="trailsight", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.csrf_token = csrf_token
    app.state.rules_file = rules_file

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

    # ------------------------------------------------------------------ rendering

    def render(request: Request, name: str, status_code: int = 200, /, **context: Any) -> HTMLResponse:
        base = {
            "request_path": request.url.path,
            "csrf_token": csrf_token,
            "store": str(store),
            "flash": request.query_params.get("msg", ""),
        }
        html = env.get_template(name).render(**base, **context)
        return HTMLResponse(html, status_code=status_code)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> HTMLResponse:
        return render(request, "error.html", 503, title="Store unavailable", message=str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403) or request.headers.get("hx-request"):
            return PlainTextResponse(str(exc.detail), exc.status_code)
        return render(request, "error.html", exc.status_code, title=f"Error {exc.status_code}", message=str(exc.detail))

    def check_csrf(request: Request, form_token: str) -> None:
        given = form_token or request.headers.get("x-csrf-token", "")
        if not given or not hmac.compare_digest(given.encode(), csrf_token.encode()):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")

    @contextmanager
    def reader() -> Iterator[duckdb.DuckDBPyConnection | None]:
        """One read-only connection to the state for a whole page (None when there is no state yet)."""
        if not queries.state_exists(store):
            yield None
            return
        with lock.read(), findings_store.connect_state(store, read_only=True) as con:
            yield con

    def open_lake(since: datetime | None = None, until: datetime | None = None) -> queries.Lake:
        with lock.read():  # listing the lake's files reads the state database
            return queries.Lake(store, since, until)

    def load_finding(finding_id: str, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
        if con is None:
            with reader() as own:
                return load_finding(finding_id, own) if own is not None else _missing(finding_id)
        finding = findings_store.get_finding(con, finding_id)
        return finding if finding is not None else _missing(finding_id)

    def _missing(finding_id: str) -> NoReturn:
        raise HTTPException(404, f"finding {finding_id}: not in {store}")

    # ------------------------------------------------------------------ findings list

    @app.get("/", response_class=HTMLResponse)
    def findings_list(
        request: Request,
        sort: str = "risk",
        tactic: str = "",
        severity: str = "",
        confidence: str = "",
        status: str | None = None,
        principal: str = "",
        account: str = "",
        since: str = "",
        until: str = "",
        page: int = Query(1, ge=1, le=1_000_000),
        size: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    ) -> HTMLResponse:
        if sort not in SORTS:
            sort = "risk"
        status_value = ACTIVE_STATUSES if status is None else ("" if status.lower() == "all" else status)
        filters = queries.FindingFilters(
            tactic=tactic or None,
            severity=severity or None,
            confidence=confidence or None,
            status=status_value or None,
            principal=principal.strip() or None,
            account=account.strip() or None,
            since=_date_param(since, "since"),
            until=_date_param(until, "until", end=True),
        )
        rows: list[dict[str, Any]] = []
        total = 0
        per_day: list[tuple[date, int]] = []
        facets: dict[str, list[str]] = {"tactic": [], "account": []}
        with reader() as con:
            if con is not None:
                total = findings_store.count_findings(con, **filters.as_kwargs())
                rows = findings_store.list_findings(
                    con, **filters.as_kwargs(), order_by=sort, limit=size, offset=(page - 1) * size
                )
                per_day = findings_store.findings_per_day(con, **filters.as_kwargs())
                facets = findings_store.finding_facets(con)
        params = {
            "sort": sort,
            "tactic": tactic,
            "severity": severity,
            "confidence": confidence,
            "status": "all" if status_value == "" else (status or ""),
            "principal": principal,
            "account": account,
            "since": since,
            "until": until,
        }
        kept = {k: v for k, v in params.items() if v}

        def link(**changes: Any) -> str:
            merged = {**kept, **{k: v for k, v in changes.items()}}
            merged = {k: v for k, v in merged.items() if v not in ("", None, 1) or (k == "page" and v != 1)}
            if merged.get("page") == 1:
                merged.pop("page")
            return "/?" + urlencode(merged) if merged else "/"

        pages = max(1, -(-total // size))
        context = {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "size": size,
            "params": params,
            "status_value": status_value,
            "link": link,
            "facets": facets,
            "chart": {
                "days": [d.isoformat() for d, _ in per_day],
                "counts": [n for _, n in per_day],
            },
            "has_state": queries.state_exists(store),
        }
        if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
            return render(request, "_findings_results.html", **context)
        return render(request, "findings.html", **context)

    # ------------------------------------------------------------------ finding detail

    @app.get("/findings/{finding_id}", response_class=HTMLResponse)
    def finding_page(request: Request, finding_id: str) -> HTMLResponse:
        with reader() as con:
            if con is None:
                _missing(finding_id)
            finding = load_finding(finding_id, con)
            feedback = findings_store.feedback_for(con, str(finding["id"]))
        first = _parse_dt(finding.get("first_seen")) or datetime.now(UTC)
        last = _parse_dt(finding.get("last_seen")) or first
        since, until = queries.window_around(first, last)
        unusual_ids = set(finding.get("event_ids") or [])
        with open_lake(since, until) as lake:
            actor = str(finding.get("actor") or finding.get("principal") or "")
            events = queries.principal_events(lake, actor, since, until)
        timeline_from_lake = bool(events)
        if not events:
            blank = dict.fromkeys(queries.EVENT_VIEW_COLUMNS)
            events = [
                {**blank, **t, "event_time": _parse_dt(t.get("event_time"))} for t in finding.get("timeline") or []
            ]
        scores = {t.get("event_id"): t.get("score") for t in finding.get("timeline") or []}
        for event in events:
            event["unusual"] = event.get("event_id") in unusual_ids or bool(event.get("unusual"))
            event["score"] = scores.get(event.get("event_id"), event.get("score"))
        unusual_groups = group_unusual(finding.get("unusual") or [])
        by_service: dict[str, list[dict[str, Any]]] = {}
        for api in finding.get("anomalous_apis") or []:
            by_service.setdefault(str(api.get("service") or "?"), []).append(api)
        chart = {
            "times": [_plot_time(e.get("event_time")) for e in events],
            "names": [str(e.get("event_name") or "") for e in events],
            "unusual": [bool(e.get("unusual")) for e in events],
        }
        return render(
            request,
            "finding.html",
            f=finding,
            events=events,
            timeline_from_lake=timeline_from_lake,
            window=(since, until),
            by_service=by_service,
            unusual_groups=unusual_groups,
            feedback=feedback,
            chart=chart,
            scopes=SCOPES,
            rules_file=str(rules_file),
        )

    @app.get("/findings/{finding_id}/events/{event_id}/raw", response_class=HTMLResponse)
    def raw_event(request: Request, finding_id: str, event_id: str) -> HTMLResponse:
        finding = load_finding(finding_id)
        first = _parse_dt(finding.get("first_seen")) or datetime.now(UTC)
        since, until = queries.window_around(first, _parse_dt(finding.get("last_seen")) or first)
        with open_lake(since, until) as lake:  # the days of the finding's timeline only
            raw = queries.raw_event(lake, event_id)
        return render(request, "_raw.html", event_id=event_id, raw=raw)

    @app.post("/findings/{finding_id}/status")
    def triage(
        request: Request,
        finding_id: str,
        action: str = Form(...),
        reason: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        check_csrf(request, csrf_token)
        if action not in ACTIONS:
            raise HTTPException(400, f"action {action!r}: must be one of {', '.join(ACTIONS)}")
        finding = load_finding(finding_id)
        with lock.write():
            findings_store.set_status(store, str(finding["id"]), ACTIONS[action], reason[:2000])
        message = f"Marked {ACTIONS[action]}."
        if request.headers.get("hx-request"):
            with reader() as con:
                updated = load_finding(finding_id, con)
                feedback = findings_store.feedback_for(con, str(updated["id"])) if con is not None else []
            return render(request, "_triage.html", f=updated, feedback=feedback, message=message)
        return RedirectResponse(f"/findings/{finding['id']}?" + urlencode({"msg": message}), status_code=303)

    @app.post("/findings/{finding_id}/suppress")
    def suppress(
        request: Request,
        finding_id: str,
        scope: list[str] = Form([]),  # noqa: B008 - FastAPI form declaration
        reason: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        check_csrf(request, csrf_token)
        finding = load_finding(finding_id)
        rule = similar_rule(finding, scope=[s for s in scope if s in SCOPES], reason=reason[:500])
        try:
            append_rule(rules_file, rule)
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from None
        message = f"Suppression rule added to {rules_file}; it applies from the next detection run."
        if request.headers.get("hx-request"):
            return render(request, "_message.html", message=message)
        return RedirectResponse(f"/findings/{finding['id']}?" + urlencode({"msg": message}), status_code=303)

    # ------------------------------------------------------------------ principal and pivots

    @app.get("/principal", response_class=HTMLResponse)
    def principal_page(request: Request, arn: str = Query(..., min_length=1, max_length=2048)) -> HTMLResponse:
        with open_lake() as lake:
            prof = queries.profile(lake, arn)
            account = prof.accounts[0] if prof.accounts else ""
            behaviour = lake.behaviour(account, arn, prof.last_seen) if prof.events else {"peers": []}
        history: list[dict[str, Any]] = []
        with reader() as con:
            if con is not None:
                history = findings_store.list_findings(con, principal=arn, order_by="time", limit=100)
        peak = max((max(row) for row in prof.heatmap), default=0)
        return render(
            request,
            "principal.html",
            p=prof,
            behaviour=behaviour,
            history=history,
            heat=[[_heat_level(n, peak) for n in row] for row in prof.heatmap],
            weekdays=queries.WEEKDAYS,
            chart={"days": [d.isoformat() for d, _ in prof.daily], "counts": [n for _, n in prof.daily]},
            is_role=":role/" in arn,
        )

    def pivot_page(request: Request, kind: str, value: str) -> HTMLResponse:
        with open_lake() as lake:
            result = queries.pivot(lake, kind, value)
        related: list[dict[str, Any]] = []
        with reader() as con:
            if con is not None:
                related = findings_store.findings_touching(
                    con,
                    ip=value if kind == "ip" else None,
                    asn=int(value) if kind == "asn" else None,
                    key=value if kind == "key" else None,
                )
        return render(request, "pivot.html", pv=result, findings=related)

    @app.get("/ip/{ip}", response_class=HTMLResponse)
    def ip_page(request: Request, ip: str) -> HTMLResponse:
        if len(ip) > 100:
            raise HTTPException(400, "not an IP address")
        return pivot_page(request, "ip", ip)

    @app.get("/asn/{asn}", response_class=HTMLResponse)
    def asn_page(request: Request, asn: int) -> HTMLResponse:
        return pivot_page(request, "asn", str(asn))

    @app.get("/key/{key}", response_class=HTMLResponse)
    def key_page(request: Request, key: str) -> HTMLResponse:
        if len(key) > 128:
            raise HTTPException(400, "not an access key id")
        return pivot_page(request, "key", key)

    @app.get("/role", response_class=HTMLResponse)
    def role_page(request: Request, arn: str = Query(..., min_length=1, max_length=2048)) -> HTMLResponse:
        with open_lake() as lake:
            upstream, downstream = queries.role_chain(lake, arn)
        return render(request, "role.html", arn=arn, upstream=upstream, downstream=downstream)

    @app.get("/search")
    def search(q: str = Query("", max_length=2048)) -> Response:
        return RedirectResponse(_search_target(q.strip()), status_code=303)

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    return app


def group_unusual(unusual: list[dict[str, Any]], keep: int = 8) -> list[dict[str, Any]]:
    """One row per attribute (api, asn, user_agent ...): its unusual values, and the usual ones merged.

    A finding can hold dozens of unusual values of one kind whose "usual" lists repeat; grouping
    keeps the page to one line per kind of attribute.
    """
    groups: dict[str, dict[str, Any]] = {}
    for u in unusual:
        attribute = str(u.get("attribute") or "?")
        group = groups.setdefault(
            attribute, {"attribute": attribute, "values": [], "principal_usual": {}, "account_usual": {}}
        )
        if all(v["value"] != u.get("value") for v in group["values"]):
            group["values"].append(
                {
                    "value": u.get("value"),
                    "for_principal": bool(u.get("unusual_for_principal")),
                    "for_account": bool(u.get("unusual_for_account")),
                    "using": u.get("principals_in_account_using", 0),
                }
            )
        for side in ("principal_usual", "account_usual"):
            for e in u.get(side) or []:
                known = group[side].get(e.get("value"))
                if known is None or int(e.get("count") or 0) > int(known.get("count") or 0):
                    group[side][e.get("value")] = e
    result = []
    for group in groups.values():
        for side in ("principal_usual", "account_usual"):
            merged = sorted(group[side].values(), key=lambda e: -int(e.get("count") or 0))
            group[side] = merged[:keep]
            group[side + "_more"] = max(0, len(merged) - keep)
        result.append(group)
    return result


def _request_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    header = request.headers.get("x-trailsight-token")
    if header is not None:
        return header
    return request.cookies.get(TOKEN_COOKIE)


def _date_param(value: str, name: str, *, end: bool = False) -> datetime | None:
    """A date (``2024-05-01``, the whole day for ``until``) or an ISO datetime, as UTC."""
    text = value.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
    except ValueError:
        raise HTTPException(400, f"{name}={text!r}: expected a date like 2024-05-01") from None
    parsed = _parse_dt(text)
    if parsed is None:
        raise HTTPException(400, f"{name}={text!r}: expected a date like 2024-05-01 or an ISO date-time")
    return parsed


def _plot_time(value: Any) -> str:
    parsed = _parse_dt(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if parsed else ""


def _heat_level(count: int, peak: int) -> int:
    """0 (none) .. 5 (peak) for the heatmap's CSS classes."""
    if count <= 0 or peak <= 0:
        return 0
    return max(1, min(5, round(5 * count / peak)))


def _search_target(q: str) -> str:
    """Where the search box sends ``q``: an IP, ASN, access key, role, principal or finding."""
    if not q:
        return "/"
    try:
        ipaddress.ip_address(q)
    except ValueError:
        pass
    else:
        return "/ip/" + q
    upper = q.upper()
    if re.fullmatch(r"AS\d{1,10}", upper) or re.fullmatch(r"\d{1,10}", q):
        return "/asn/" + upper.removeprefix("AS")
    if re.fullmatch(r"(AKIA|ASIA)[A-Z0-9]{8,32}", upper):
        return "/key/" + upper
    if q.startswith("arn:"):
        return "/principal?" + urlencode({"arn": q})
    if re.fullmatch(r"[0-9a-f]{6,64}", q):
        return "/findings/" + q
    return "/?" + urlencode({"principal": q, "status": "all"})


__all__ = ["create_app", "fmt_time"]
