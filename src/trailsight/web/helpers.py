"""Template filters and request-parameter helpers of the web UI (no state, no routes)."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException
from markupsafe import Markup, escape

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
ACTIVE_STATUSES = "Open,Acknowledged,Malicious"
ACTIONS = {"ack": "Acknowledged", "dismiss": "Dismissed", "malicious": "Malicious", "reopen": "Open"}
SORTS = {"risk": "Risk", "severity": "Severity", "time": "Last seen", "first_seen": "First seen"}


def parse_dt(value: Any) -> datetime | None:
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
    parsed = parse_dt(value)
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


def slug(value: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(value or "none").lower()).strip("-") or "none"


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


def date_param(value: str, name: str, *, end: bool = False) -> datetime | None:
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
    parsed = parse_dt(text)
    if parsed is None:
        raise HTTPException(400, f"{name}={text!r}: expected a date like 2024-05-01 or an ISO date-time")
    return parsed


def plot_time(value: Any) -> str:
    parsed = parse_dt(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if parsed else ""


def heat_level(count: int, peak: int) -> int:
    """0 (none) .. 5 (peak) for the heatmap's CSS classes."""
    if count <= 0 or peak <= 0:
        return 0
    return max(1, min(5, round(5 * count / peak)))


def search_target(q: str) -> str:
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


__all__ = [
    "ACTIONS",
    "ACTIVE_STATUSES",
    "MAX_PAGE_SIZE",
    "PAGE_SIZE",
    "SORTS",
    "clip",
    "clip_mid",
    "date_param",
    "fmt_time",
    "group_unusual",
    "heat_level",
    "number",
    "parse_dt",
    "plot_time",
    "search_target",
    "slug",
    "soft_breaks",
]
