"""Messages for people: a Slack Block Kit message and a Microsoft Teams Adaptive Card per finding.

Both show the same things: severity, the title, the first line of the explanation, who acted
(principal), in which account, the top three reasons, the events and time span, and — when
``ui_url`` is set — a button that opens the finding in ``trailsight serve``.

Everything in a finding that came from CloudTrail (principal names, user agents, API names,
error messages) is attacker-controlled, so no such text reaches the receiver as markup:

* **Slack**: the header, the fields and the reasons are ``plain_text`` objects, which Slack
  never parses; the notification ``text`` (mrkdwn) has ``&``, ``<`` and ``>`` escaped as Slack
  asks, so ``<!channel>``, ``<@U123>`` or ``<https://evil|click>`` appear as typed and cannot
  ping or link.
* **Teams**: text blocks render a Markdown subset (emphasis, links, lists), so the characters
  that open those (``* _ [ ] ` ~ |``, and a list marker at the start of a line) are
  backslash-escaped, and ``<`` / ``>`` are written as entities.

In both, every value first goes through :func:`trailsight.text.visible` (the project's one rule
for human-facing text: control, direction-override and zero-width characters shown as visible
escapes, so ``invoice\u202egnp.exe`` cannot pass for ``invoiceexe.png``), and every text is
clipped to the receiver's limits.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from trailsight.finding import Finding
from trailsight.findings.export_common import clip, utf8_clean
from trailsight.findings.names import person_name
from trailsight.text import visible

#: Slack limits: header text 150, section text 3000, a field 2000, 10 fields, 50 blocks.
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000
#: Teams TextBlocks have no hard limit; the whole card must stay under 28 KB.
TEAMS_TEXT_MAX = 2000

_TEAMS_MD = re.compile(r"([\\`*_\[\]~|])")
_TEAMS_BULLET = re.compile(r"^(\s*)([-+#])(?=\s)", re.MULTILINE)
_TEAMS_NUMBERED = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)
_SEVERITY_EMOJI = {"High": ":red_circle:", "Medium": ":large_orange_circle:", "Low": ":large_yellow_circle:"}
_TEAMS_COLOUR = {"High": "Attention", "Medium": "Warning", "Low": "Accent"}


def safe_text(text: object) -> str:
    """One value as text for people: valid UTF-8, invisible and direction characters made visible."""
    return visible(utf8_clean(str(text)))


def slack_escape(text: str) -> str:
    """Text for a Slack ``mrkdwn`` field: ``&``, ``<``, ``>`` escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_escape(text: str) -> str:
    """Text for a Teams TextBlock: Markdown punctuation backslash-escaped, ``<``/``>`` as entities."""
    cleaned = _TEAMS_MD.sub(r"\\\1", text)
    cleaned = _TEAMS_NUMBERED.sub(r"\1\\.", _TEAMS_BULLET.sub(r"\1\\\2", cleaned))
    return cleaned.replace("<", "&lt;").replace(">", "&gt;")


def finding_url(ui_url: str | None, finding_id: str) -> str | None:
    """The finding's page in ``trailsight serve`` (``<ui_url>/findings/<id>``), or None."""
    if not ui_url:
        return None
    return ui_url.rstrip("/") + "/findings/" + urllib.parse.quote(finding_id, safe="")


def _summary(f: Finding) -> dict[str, str]:
    story = next((line for line in f.explanation if line.strip()), "")
    reasons = sorted(f.reasons, key=lambda r: -r.score)[:3]
    span = f"{f.first_seen:%Y-%m-%d %H:%M}–{f.last_seen:%H:%M} UTC"
    if f.first_seen.date() != f.last_seen.date():
        span = f"{f.first_seen:%Y-%m-%d %H:%M} – {f.last_seen:%Y-%m-%d %H:%M} UTC"
    return {
        "severity": safe_text(f.severity_label or "Unknown"),
        "title": safe_text(f.title or f.finding_type),
        "story": safe_text(story),
        # the person first behind a shared role; else the principal's whole ARN
        "principal": safe_text(person_name(f.principal, f.actor) if f.actor != f.principal else f.principal),
        "account": safe_text(f.account_id),
        "events": f"{f.count} ({span})",
        "risk": safe_text(f"{f.risk_score}/100, confidence {f.confidence}"),
        "tactic": safe_text(f.tactic or "none"),
        "reasons": "\n".join(f"• {safe_text(r.message)}" for r in reasons),  # one value a line
    }


def _headline(action: str) -> str:
    return {"update": "updated finding", "new": "new finding"}.get(action, "finding")


def slack_message(f: Finding, *, action: str = "new", ui_url: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook payload (Block Kit) for finding ``f``."""
    s = _summary(f)
    sev = s["severity"]
    emoji = _SEVERITY_EMOJI.get(sev, ":white_circle:")

    def plain(text: str, limit: int) -> dict[str, Any]:
        return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": False}

    fields = [
        plain(f"Severity: {sev}", SLACK_FIELD_MAX),
        plain(f"Risk: {s['risk']}", SLACK_FIELD_MAX),
        plain(f"Principal: {s['principal']}", SLACK_FIELD_MAX),
        plain(f"Account: {s['account']}", SLACK_FIELD_MAX),
        plain(f"Events: {s['events']}", SLACK_FIELD_MAX),
        plain(f"Tactic: {s['tactic']}", SLACK_FIELD_MAX),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f"{sev}: {s['title']}", SLACK_HEADER_MAX)},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"{emoji} trailsight {_headline(action)} `{slack_escape(safe_text(f.id))}`"}
            ],
        },
    ]
    if s["story"]:
        blocks.append({"type": "section", "text": plain(s["story"], SLACK_TEXT_MAX)})
    blocks.append({"type": "section", "fields": fields})
    if s["reasons"]:
        blocks.append({"type": "section", "text": plain(s["reasons"], SLACK_TEXT_MAX)})
    url = finding_url(ui_url, f.id)
    if url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in trailsight"},
                        "url": clip(url, 3000),
                        "action_id": "open_finding",
                    }
                ],
            }
        )
    text = clip(f"[{sev}] {slack_escape(s['title'])} ({slack_escape(s['principal'])}, {s['account']})", 3000)
    return {"text": text, "blocks": blocks}


def teams_message(f: Finding, *, action: str = "new", ui_url: str | None = None) -> dict[str, Any]:
    """A Teams incoming-webhook payload: one Adaptive Card (schema 1.4) for finding ``f``."""
    s = _summary(f)
    sev = s["severity"]

    def esc(text: str) -> str:
        return clip(teams_escape(text), TEAMS_TEXT_MAX)

    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": esc(f"{sev}: {s['title']}"),
            "weight": "Bolder",
            "size": "Medium",
            "color": _TEAMS_COLOUR.get(sev, "Default"),
            "wrap": True,
        },
        {"type": "TextBlock", "text": esc(f"trailsight {_headline(action)} {f.id}"), "isSubtle": True, "wrap": True},
    ]
    if s["story"]:
        body.append({"type": "TextBlock", "text": esc(s["story"]), "wrap": True})
    facts = [
        ("Severity", sev),
        ("Risk", s["risk"]),
        ("Principal", s["principal"]),
        ("Account", s["account"]),
        ("Events", s["events"]),
        ("Tactic", s["tactic"]),
    ]
    body.append({"type": "FactSet", "facts": [{"title": k, "value": esc(v)} for k, v in facts]})
    if s["reasons"]:
        body.append({"type": "TextBlock", "text": esc(s["reasons"]), "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    url = finding_url(ui_url, f.id)
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in trailsight", "url": url}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


__all__ = ["finding_url", "safe_text", "slack_escape", "slack_message", "teams_escape", "teams_message"]
