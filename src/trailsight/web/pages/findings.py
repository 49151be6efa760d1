"""The findings pages: the list (``/``) and a finding (``/findings/{id}``).

With a finding's raw events, its triage and "suppress similar" (POSTs).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trailsight.errors import ConfigError
from trailsight.findings.names import short_arn
from trailsight.findings.render import story_sentences
from trailsight.store import findings as findings_store
from trailsight.web import queries
from trailsight.web.helpers import (
    ACTIONS,
    ACTIVE_STATUSES,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    SORTS,
    date_param,
    group_unusual,
    parse_dt,
    plot_time,
)
from trailsight.web.rules import SCOPES, append_rule, similar_rule
from trailsight.web.site import site_of

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
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
    site = site_of(request)
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
        since=date_param(since, "since"),
        until=date_param(until, "until", end=True),
    )
    rows: list[dict[str, Any]] = []
    total = 0
    per_day: list[tuple[date, int]] = []
    facets: dict[str, list[str]] = {"tactic": [], "account": []}
    with site.reader() as con:
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
        "has_state": queries.state_exists(site.store),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return site.render(request, "_findings_results.html", **context)
    return site.render(request, "findings.html", **context)


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request, finding_id: str) -> HTMLResponse:
    site = site_of(request)
    with site.reader() as con:
        if con is None:
            site.missing(finding_id)
        finding = site.load_finding(finding_id, con)
        feedback = findings_store.feedback_for(con, str(finding["id"]))
    first = parse_dt(finding.get("first_seen")) or datetime.now(UTC)
    last = parse_dt(finding.get("last_seen")) or first
    since, until = queries.window_around(first, last)
    # The unusual events are a finding's first ``count``; the rest are its session's other calls.
    unusual_ids = set((finding.get("event_ids") or [])[: int(finding.get("count") or 0)])
    with site.open_lake(since, until) as lake:
        actor = str(finding.get("actor") or finding.get("principal") or "")
        events = queries.principal_events(lake, actor, since, until)
    timeline_from_lake = bool(events)
    if not events:
        blank = dict.fromkeys(queries.EVENT_VIEW_COLUMNS)
        events = [{**blank, **t, "event_time": parse_dt(t.get("event_time"))} for t in finding.get("timeline") or []]
    scores = {t.get("event_id"): t.get("score") for t in finding.get("timeline") or []}
    for event in events:
        event["unusual"] = event.get("event_id") in unusual_ids or bool(event.get("unusual"))
        event["score"] = scores.get(event.get("event_id"), event.get("score"))
    unusual_groups = group_unusual(finding.get("unusual") or [])
    by_service: dict[str, list[dict[str, Any]]] = {}
    for api in finding.get("anomalous_apis") or []:
        by_service.setdefault(str(api.get("service") or "?"), []).append(api)
    chart = {
        "times": [plot_time(e.get("event_time")) for e in events],
        "names": [str(e.get("event_name") or "") for e in events],
        "unusual": [bool(e.get("unusual")) for e in events],
    }
    steps = finding.get("steps") or []
    story_chart = {
        "times": [plot_time(parse_dt(st.get("time"))) for st in steps],
        "who": [short_arn(str(st.get("principal") or ""), str(st.get("actor") or "")) for st in steps],
        "what": [str(st.get("what") or "") for st in steps],
        "kinds": [str(st.get("kind") or "") for st in steps],
    }
    return site.render(
        request,
        "finding.html",
        f=finding,
        story_steps=list(zip(steps, story_sentences(finding), strict=True)),
        story_chart=story_chart,
        events=events,
        timeline_from_lake=timeline_from_lake,
        window=(since, until),
        by_service=by_service,
        unusual_groups=unusual_groups,
        feedback=feedback,
        chart=chart,
        scopes=SCOPES,
        rules_file=str(site.rules_file),
    )


@router.get("/findings/{finding_id}/events/{event_id}/raw", response_class=HTMLResponse)
def raw_event(request: Request, finding_id: str, event_id: str) -> HTMLResponse:
    site = site_of(request)
    finding = site.load_finding(finding_id)
    first = parse_dt(finding.get("first_seen")) or datetime.now(UTC)
    since, until = queries.window_around(first, parse_dt(finding.get("last_seen")) or first)
    with site.open_lake(since, until) as lake:  # the days of the finding's timeline only
        raw = queries.raw_event(lake, event_id)
    return site.render(request, "_raw.html", event_id=event_id, raw=raw)


@router.post("/findings/{finding_id}/status")
def triage(
    request: Request,
    finding_id: str,
    action: str = Form(...),
    reason: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    site = site_of(request)
    site.check_csrf(request, csrf_token)
    if action not in ACTIONS:
        raise HTTPException(400, f"action {action!r}: must be one of {', '.join(ACTIONS)}")
    finding = site.load_finding(finding_id)
    with site.writing():
        findings_store.set_status(site.store, str(finding["id"]), ACTIONS[action], reason[:2000])
    message = f"Marked {ACTIONS[action]}."
    if request.headers.get("hx-request"):
        with site.reader() as con:
            updated = site.load_finding(finding_id, con)
            feedback = findings_store.feedback_for(con, str(updated["id"])) if con is not None else []
        return site.render(request, "_triage.html", f=updated, feedback=feedback, message=message)
    return RedirectResponse(f"/findings/{finding['id']}?" + urlencode({"msg": message}), status_code=303)


@router.post("/findings/{finding_id}/suppress")
def suppress(
    request: Request,
    finding_id: str,
    scope: list[str] = Form([]),  # noqa: B008 - FastAPI form declaration
    reason: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    site = site_of(request)
    site.check_csrf(request, csrf_token)
    finding = site.load_finding(finding_id)
    rule = similar_rule(finding, scope=[s for s in scope if s in SCOPES], reason=reason[:500])
    try:
        append_rule(site.rules_file, rule)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    message = f"Suppression rule added to {site.rules_file}; it applies from the next detection run."
    if request.headers.get("hx-request"):
        return site.render(request, "_message.html", message=message)
    return RedirectResponse(f"/findings/{finding['id']}?" + urlencode({"msg": message}), status_code=303)


__all__ = ["router"]
