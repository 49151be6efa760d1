"""The principal pages: a principal's profile (``/principal?arn=``) and a role's AssumeRole chain (``/role?arn=``).

The figures come from :mod:`trailsight.investigate` (``principal_activity``, ``role_assumers``,
``roles_assumed``), the same queries ``trailsight profile`` and ``trailsight investigate`` run;
this module only shapes them for the templates.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from trailsight.investigate.pivots import role_assumers, roles_assumed
from trailsight.investigate.profile import DAYS, no_activity, principal_activity
from trailsight.store import findings as findings_store
from trailsight.web.helpers import heat_level
from trailsight.web.site import site_of

router = APIRouter()


def profile_context(activity: dict[str, Any]) -> dict[str, Any]:
    """What ``principal.html`` shows of :func:`~trailsight.investigate.profile.principal_activity`'s result."""
    heatmap: list[list[int]] = activity["heatmap"]
    peak = max((max(row) for row in heatmap), default=0)
    daily: list[dict[str, Any]] = activity["daily"]
    return {
        "p": activity,
        "behaviour": {"peers": activity["peers"], "automation": activity["automation"]},
        "heat": [[heat_level(n, peak) for n in row] for row in heatmap],
        "weekdays": DAYS,
        "chart": {"days": [d["day"] for d in daily], "counts": [d["events"] for d in daily]},
    }


@router.get("/principal", response_class=HTMLResponse)
def principal_page(request: Request, arn: str = Query(..., min_length=1, max_length=2048)) -> HTMLResponse:
    site = site_of(request)
    with site.open_lake() as lake:
        activity = no_activity(arn) if lake.empty else principal_activity(lake.connection(), arn)
    history: list[dict[str, Any]] = []
    with site.reader() as con:
        if con is not None:
            history = findings_store.list_findings(con, principal=arn, order_by="time", limit=100)
    return site.render(request, "principal.html", **profile_context(activity), history=history, is_role=":role/" in arn)


@router.get("/role", response_class=HTMLResponse)
def role_page(request: Request, arn: str = Query(..., min_length=1, max_length=2048)) -> HTMLResponse:
    site = site_of(request)
    with site.open_lake() as lake:
        con = None if lake.empty else lake.connection()
        upstream = role_assumers(con, arn) if con is not None else []
        downstream = roles_assumed(con, arn) if con is not None else []
    return site.render(request, "role.html", arn=arn, upstream=upstream, downstream=downstream)


__all__ = ["profile_context", "router"]
