"""What every page of the web UI shares: the store, the templates, the CSRF token, the state lock.

:func:`trailsight.web.app.create_app` makes one :class:`Site` per app and keeps it as
``app.state.site``; each page router (:mod:`trailsight.web.pages`) reaches it with
:func:`site_of`. The state database is opened read-only for a page (:meth:`Site.reader`) and
read-write only for the moment a verdict is written (:meth:`Site.writing`).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import duckdb
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from trailsight import __version__
from trailsight.enrich.netclass import label as net_class_label
from trailsight.finding import CONFIDENCE_LABELS, SEVERITY_LABELS, STATUSES, TACTICS
from trailsight.findings.names import short_arn
from trailsight.store import findings as findings_store
from trailsight.web import queries, safety
from trailsight.web.helpers import SORTS, clip, clip_mid, fmt_time, number, slug, soft_breaks

HERE = Path(__file__).resolve().parent


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


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=safety.finalize,  # every written value: invisible characters as visible escapes
    )
    env.filters.update(
        {
            "when": fmt_time,
            "short_arn": short_arn,
            "clip": clip,
            "clip_mid": clip_mid,
            "number": number,
            "slug": slug,
            "soft_breaks": soft_breaks,
            "visible_data": safety.visible_data,
            "net_class": net_class_label,
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


class Site:
    """One web UI's store, templates, CSRF token and state lock."""

    def __init__(self, store: Path, rules_file: Path, csrf_token: str) -> None:
        self.store = store
        self.rules_file = rules_file
        self.csrf_token = csrf_token
        self.env = environment()
        self.lock = _ReadWriteLock()

    def render(self, request: Request, name: str, status_code: int = 200, /, **context: Any) -> HTMLResponse:
        """The template ``name`` rendered with ``context`` and what every page shows."""
        base = {
            "request_path": request.url.path,
            "csrf_token": self.csrf_token,
            "store": str(self.store),
            "flash": request.query_params.get("msg", ""),
        }
        html = self.env.get_template(name).render(**base, **context)
        return HTMLResponse(html, status_code=status_code)

    def check_csrf(self, request: Request, form_token: str) -> None:
        """403 unless the form field or the ``X-CSRF-Token`` header carries this process's token."""
        given = form_token or request.headers.get("x-csrf-token", "")
        if not given or not hmac.compare_digest(given.encode(), self.csrf_token.encode()):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """One read-only connection to the state for a whole page (None when there is no state yet)."""
        if not queries.state_exists(self.store):
            yield None
            return
        with self.lock.read(), findings_store.connect_state(self.store, read_only=True) as con:
            yield con

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the state for a write (page reads in flight finish first)."""
        with self.lock.write():
            yield

    def open_lake(self, since: datetime | None = None, until: datetime | None = None) -> queries.Lake:
        """The lake's events of ``[since, until)`` (all when not given), for one page."""
        with self.lock.read():  # listing the lake's files reads the state database
            return queries.Lake(self.store, since, until)

    def load_finding(self, finding_id: str, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
        """A stored finding by id (or id prefix); 404 when there is none."""
        if con is None:
            with self.reader() as own:
                return self.load_finding(finding_id, own) if own is not None else self.missing(finding_id)
        finding = findings_store.get_finding(con, finding_id)
        return finding if finding is not None else self.missing(finding_id)

    def missing(self, finding_id: str) -> NoReturn:
        """404 for a finding not in the store."""
        raise HTTPException(404, f"finding {finding_id}: not in {self.store}")


def site_of(request: Request) -> Site:
    """The :class:`Site` of the app serving ``request``."""
    site: Site = request.app.state.site
    return site


__all__ = ["HERE", "Site", "environment", "site_of"]
