"""The principal pages: a principal's profile (``/principal?arn=``) and a role's AssumeRole chain (``/role?arn=``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from trailsight.store import findings as findings_store
from trailsight.web import queries
from trailsight.web.helpers import heat_level
from trailsight.web.site import site_of

router = APIRouter()


@router.get("/principal", response_class=HTMLResponse)
def principal_page(request: Request, arn: str = Query(..., min_length=1, max_length=2048)) -> HTMLResponse:
    site = site_of(request)
    with site.open_lake() as lake:
        prof = queries.profile(lake, arn)
        account = prof.accounts[0] if prof.accounts else ""
        behaviour = lake.behaviour(account, arn, prof.last_seen) if prof.events else {"peers": []}
    history: list[dict[str, Any]] = []
    with site.reader() as con:
        if con is not None:
            history = findings_store.list_findings(con, principal=arn, order_by="time", limit=100)
    peak = max((max(row) for row in prof.heatmap), default=0)
    return site.render(
        request,
        "principal.html",
        p=prof,
        behaviour=behaviour,
        history=history,
        heat=[[heat_level(n, peak) for n in row] for row in prof.heatmap],
        weekdays=queries.WEEKDAYS,
        chart={"days": [d.isoformat() for d, _ in prof.daily], "counts": [n for _, n in prof.daily]},
        is_role=":role/" in arn,
    )


@router.get("/role", response_class=HTMLResponse)
def role_page(request: Request, arn: str = Query(..., min_length=1, max_length=2048)) -> HTMLResponse:
    site = site_of(request)
    with site.open_lake() as lake:
        upstream, downstream = queries.role_chain(lake, arn)
    return site.render(request, "role.html", arn=arn, upstream=upstream, downstream=downstream)


__all__ = ["router"]
