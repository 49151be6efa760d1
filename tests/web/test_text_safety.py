"""Bidirectional, zero-width and control characters are shown as visible escapes, never obeyed.

A user agent ``invoice\\u202egnp.exe`` would read ``invoiceexe.png`` and an API ``Get\\u202etcejbO`` would
read ``GetObject``: the pages show the escapes (``\\u202e``) instead, in text and in chart labels,
and the right-to-left override cannot spill into the page's own words.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LiveServer, make_client
from webseed import ACCOUNT, normalise, write_lake

from trailsight.finding import ApiCall, Evidence, Finding, NetworkInfo, Reason, UnusualAttribute
from trailsight.store.findings import save_findings
from trailsight.text import INVISIBLE, visible

UA = "invoice\u202egnp.exe"
API = "Get\u202etcejbO"
SESSION = "ali\u200bce\u2066x\x1b[31m"
CITY = "Par\u200fis\u0085"
FID = "b1d1b1d1b1d1b1d1"


def _hidden(text: str) -> list[str]:
    """The invisible characters in ``text`` other than the page's own line breaks and tabs."""
    return [c for c in INVISIBLE.findall(text) if c not in "\t\n\r"]


def bidi_store(store: Path) -> None:
    t0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
    principal = f"arn:aws:iam::{ACCOUNT}:role/de\u202eploy"
    rows = []
    for i in range(4):
        raw = {
            "eventID": f"bidi-{i}",
            "eventTime": (t0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "eventName": API,
            "eventSource": "s3.amazonaws.com",
            "userAgent": UA,
            "sourceIPAddress": "203.0.113.9",
            "requestParameters": {"bucketName": SESSION},
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{SESSION}",
                "sessionContext": {"sessionIssuer": {"arn": principal}},
            },
            "recipientAccountId": ACCOUNT,
        }
        row = normalise(raw, "bidi.json", i)
        row.update({"city": CITY, "country": "FR", "asn": 64500, "as_org": UA, "ip_kind": "public"})
        rows.append(row)
    write_lake(store, rows)
    finding = Finding(
        id=FID,
        finding_type="Collection:AssumedRole/AnomalousBehavior",
        title=f"{API} by {UA}",
        principal=principal,
        actor=principal,
        account_id=ACCOUNT,
        identity_type="AssumedRole",
        first_seen=t0,
        last_seen=t0 + timedelta(minutes=3),
        count=4,
        score=0.9,
        risk_score=80,
        severity=7.0,
        severity_label="High",
        confidence="High",
        tactic="Collection",
        tactic_id="TA0009",
        technique="T1530",
        event_ids=[r["event_id"] for r in rows],
        reasons=[Reason(detector="rare_api_for_principal", code="new_api", score=0.9, message=f"new API {API}")],
        anomalous_apis=[ApiCall(service="s3", event_name=API, success=4, failure=0)],
        unusual=[
            UnusualAttribute(
                attribute="user_agent",
                value=UA,
                unusual_for_principal=True,
                unusual_for_account=True,
                principal_usual=[Evidence(value=SESSION, count=3, frequency="rare")],
            )
        ],
        networks=[NetworkInfo(ip="203.0.113.9", ip_kind="public", asn=64500, as_org=UA, city=CITY, country="FR")],
        user_agents=[UA],
        session_names=[SESSION],
        explanation=[f"{UA} called {API}"],
    )
    save_findings(store, [finding])


@pytest.fixture(scope="module")
def bidi_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("bidi") / "store"
    store.mkdir()
    bidi_store(store)
    return store


@pytest.fixture
def bidi(bidi_template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(bidi_template, copy)
    return copy


PAGES = ("/", f"/findings/{FID}", "/ip/203.0.113.9", "/asn/64500")


@pytest.mark.parametrize("path", PAGES)
def test_no_invisible_character_reaches_the_page(bidi: Path, path: str) -> None:
    page = make_client(bidi).get(path)
    assert page.status_code == 200
    html = page.text
    assert _hidden(html) == []
    if path.startswith("/findings/"):
        assert visible(UA) in html
        assert visible(API) in html.replace("<wbr>", "")


def test_user_text_is_isolated_from_the_page(bidi: Path) -> None:
    html = make_client(bidi).get(f"/findings/{FID}").text
    assert '<h1 class="ftitle" dir="auto">' in html
    assert "<bdi>" in html


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.mark.browser
def test_chromium_shows_the_escaped_text(chromium: object, bidi: Path) -> None:
    from playwright.sync_api import Browser

    assert isinstance(chromium, Browser)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        with LiveServer(bidi) as server:
            page.goto(f"{server.url}/findings/{FID}")
            page.wait_for_load_state("load")
            title = page.locator("h1.ftitle").inner_text()
            assert title == visible(f"{API} by {UA}")
            assert page.title() == visible(f"{API} by {UA}") + " · trailsight"
            body = page.locator("main").inner_text()
            for value in (UA, API, SESSION):
                assert visible(value) in body, value
            assert _hidden(body) == []
            # The chart's axis labels (drawn by Plotly from the page's JSON data) show the escapes too.
            page.wait_for_selector("#timeline-chart .main-svg")
            labels = page.eval_on_selector_all("#timeline-chart .main-svg text", "els => els.map(e => e.textContent)")
            assert any(visible(API) in label for label in labels), labels
            assert not any(_hidden(label) for label in labels)
    finally:
        context.close()
