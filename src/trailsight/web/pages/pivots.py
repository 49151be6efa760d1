"""The pivot pages: who used an IP (``/ip/{ip}``), an ASN (``/asn/{n}``) or an access key (``/key/{id}``).

A key's page also shows its lineage (:func:`trailsight.investigate.lineage.key_lineage`): up to
the identity that handed it out and whoever made that one, through role chains and across
accounts, and down to the keys, users and sessions its holder made.

And the search box (``/search``), which sends a query to the page it names.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trailsight.investigate.lineage import key_lineage
from trailsight.store import findings as findings_store
from trailsight.web import queries
from trailsight.web.helpers import search_target
from trailsight.web.site import site_of

router = APIRouter()


def pivot_page(request: Request, kind: str, value: str) -> HTMLResponse:
    site = site_of(request)
    with site.open_lake() as lake:
        result = queries.pivot(lake, kind, value)
    related: list[dict[str, Any]] = []
    with site.reader() as con:
        if con is not None:
            related = findings_store.findings_touching(
                con,
                ip=value if kind == "ip" else None,
                asn=int(value) if kind == "asn" else None,
                key=value if kind == "key" else None,
            )
    chain: dict[str, list[dict[str, Any]]] = {"upstream": [], "downstream": []}
    if kind == "key":
        with site.lock.read():  # the stored lineage is in the state database
            chain = key_lineage(site.store, value)
    return site.render(request, "pivot.html", pv=result, findings=related, lineage=chain)


@router.get("/ip/{ip:path}", response_class=HTMLResponse)  # :path: a value may hold '/'
def ip_page(request: Request, ip: str) -> HTMLResponse:
    if len(ip) > 100:
        raise HTTPException(400, "not an IP address")
    return pivot_page(request, "ip", ip)


@router.get("/asn/{asn}", response_class=HTMLResponse)
def asn_page(request: Request, asn: int) -> HTMLResponse:
    return pivot_page(request, "asn", str(asn))


@router.get("/key/{key:path}", response_class=HTMLResponse)
def key_page(request: Request, key: str) -> HTMLResponse:
    if len(key) > 128:
        raise HTTPException(400, "not an access key id")
    return pivot_page(request, "key", key)


@router.get("/search")
def search(q: str = Query("", max_length=2048)) -> Response:
    return RedirectResponse(search_target(q.strip()), status_code=303)


__all__ = ["router"]
