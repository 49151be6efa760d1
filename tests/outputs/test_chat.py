"""Slack and Teams messages: what they show, and that hostile CloudTrail text cannot inject markup."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson
import pytest

from alert_samples import as_alert, golden
from http_stub import Receiver
from trailsight.finding import Reason
from trailsight.outputs.chat import safe_text, slack_escape, slack_message, teams_escape, teams_message
from trailsight.outputs.registry import parse_output

HOSTILE_PRINCIPAL = "arn:aws:iam::123837392027:user/<!channel> <@U024BE7LH> &amp;"
HOSTILE_TITLE = "<https://evil.example/login|Reset your password> *urgent* `x` \u202etxt.exe"
HOSTILE_REASON = "user agent <!here> [click](https://evil.example) **now** <script>alert(1)</script>"


def hostile() -> Any:
    f = golden()[0]
    top = max(r.score for r in f.reasons) + 1
    reasons = [Reason(detector="unusual_user_agent", code="ua", score=top, message=HOSTILE_REASON), *f.reasons]
    return replace(f, principal=HOSTILE_PRINCIPAL, actor=HOSTILE_PRINCIPAL, title=HOSTILE_TITLE, reasons=reasons)


def _mrkdwn_texts(value: Any) -> list[str]:
    """Every string Slack would parse as mrkdwn (text of type mrkdwn, and the top-level text)."""
    out: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            out.append(value["text"])
        for v in value.values():
            out.extend(_mrkdwn_texts(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_mrkdwn_texts(v))
    return out


def test_slack_escape_rules() -> None:
    assert slack_escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    # invisible and direction characters are shown, not hidden (trailsight.text.visible)
    assert safe_text("a\u202eb\x07c") == "a\\u202eb\\x07c"


def test_slack_message_carries_the_finding_and_no_live_markup() -> None:
    f = hostile()
    msg = slack_message(f, action="new", ui_url="https://trailsight.example.com/")
    raw = orjson.dumps(msg).decode()
    # mrkdwn texts: no Slack control sequence survives (no <...>), no direction override
    for text in [msg["text"], *_mrkdwn_texts(msg["blocks"])]:
        assert "<" not in text, text
        assert ">" not in text, text
        assert "\u202e" not in text
    assert "&lt;!channel&gt;" in msg["text"]
    # the hostile values themselves travel as plain_text (never parsed), so they read as typed
    plain = next(b for b in msg["blocks"] if b["type"] == "header")["text"]
    assert plain["type"] == "plain_text"
    assert plain["text"].startswith("Medium: <https://evil.example/login|")
    assert len(plain["text"]) <= 150
    fields = next(b for b in msg["blocks"] if "fields" in b)["fields"]
    assert {x["type"] for x in fields} == {"plain_text"}
    assert any(x["text"] == f"Principal: {HOSTILE_PRINCIPAL}" for x in fields)
    assert any(x["text"] == "Account: 123837392027" for x in fields)
    reasons = [b for b in msg["blocks"] if b["type"] == "section" and "text" in b and "•" in b["text"]["text"]]
    assert reasons
    assert reasons[0]["text"]["type"] == "plain_text"
    assert reasons[0]["text"]["text"].count("•") == 3  # the top three reasons
    assert HOSTILE_REASON in reasons[0]["text"]["text"]
    # the link to the finding in trailsight serve
    button = next(b for b in msg["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == f"https://trailsight.example.com/findings/{f.id}"
    assert "\u202e" not in raw


def test_slack_message_without_ui_url_has_no_button() -> None:
    msg = slack_message(golden()[0])
    assert not [b for b in msg["blocks"] if b["type"] == "actions"]


def test_teams_card_escapes_markdown() -> None:
    f = hostile()
    msg = teams_message(f, action="update", ui_url="https://ts.example")
    card = msg["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    texts += [fact["value"] for b in card["body"] if b["type"] == "FactSet" for fact in b["facts"]]
    joined = "\n".join(texts)
    assert "<" not in joined  # no HTML-looking tags
    assert "[click](https" not in joined
    assert "\\[click\\](https" in joined
    assert "**now**" not in joined
    assert "\\*\\*now\\*\\*" in joined
    assert card["actions"][0]["url"] == f"https://ts.example/findings/{f.id}"
    assert "updated finding" in texts[1]
    assert teams_escape("a_b") == "a\\_b"


@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_chat_sinks_post_the_rendered_message(kind: str) -> None:
    rec = Receiver()
    try:
        sink = parse_output(f"{kind}:{rec.url}")
        alert = as_alert(hostile())
        result = sink.send([alert])
        assert result.delivered == [alert]
        assert not result.failed
        body = orjson.loads(rec.bodies[0])
        expected = slack_message(hostile()) if kind == "slack" else teams_message(hostile())
        assert body == orjson.loads(orjson.dumps(expected))
        assert rec.request_headers[0]["Content-Type"] == "application/json"
    finally:
        rec.close()


def test_webhook_errors_do_not_leak_the_secret_url() -> None:
    rec = Receiver(fail_first=99, status=404)
    try:
        result = parse_output(f"slack:{rec.url}?retries=0").send([as_alert(golden()[0])])
        error = result.failed[0][1]
        assert "HTTP 404" in error
        assert "secret" not in error
        assert re.search(r"/services/…", error)
    finally:
        rec.close()


def test_teams_escape_leaves_ordinary_punctuation() -> None:
    assert teams_escape("role deploy-prod (eu-west-1). 1 failed") == "role deploy-prod (eu-west-1). 1 failed"
    assert teams_escape("- a list\n1. item") == "\\- a list\n1\\. item"
