"""The web UI in headless Chromium (Debian's package) driven by Playwright, against a real uvicorn server.

Set ``TRAILSIGHT_DOCS_SCREENSHOTS=1`` to also refresh docs/img/finding.png from the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LiveServer
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VENDOR = Path(__file__).resolve().parents[2] / "src/trailsight/web/static/vendor"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs/img/finding.png"
PASSWORD_ID = "f1a2b3c4d5e6f7a8"
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs it (scripts/system-deps)")
    if not (VENDOR / "htmx.min.js").is_file():
        pytest.fail(f"{VENDOR}/htmx.min.js is missing: it is checked in (git checkout -- {VENDOR})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watch:
    """Collects dialogs (a script ran), page errors and console errors (CSP violations included)."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.errors.append(f"console {msg.type}: {msg.text}")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def test_list_open_dismiss_and_list_changes(live_server: LiveServer, page: Page, tmp_path: Path) -> None:
    watch = Watch(page)
    page.goto(live_server.url + "/")
    rows = page.locator("table.findings tbody tr")
    assert rows.count() == 2
    assert page.locator(".js-plotly-plot").count() == 1  # the per-day chart drew (Plotly, offline)

    page.click(f"a[href='/findings/{PASSWORD_ID}']")
    page.wait_for_url(f"**/findings/{PASSWORD_ID}")
    assert page.locator("h2").first.inner_text() == "Triage" or page.locator(".explain h2").inner_text() == (
        "What happened"
    )
    assert "GetPasswordData 29 times" in page.locator(".explanation").inner_text()
    assert page.locator("table.timeline tr.unusual-row").count() == 29
    page.wait_for_selector("#timeline-chart.js-plotly-plot")

    shot = tmp_path / "finding.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 20_000
    if os.environ.get("TRAILSIGHT_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG)

    # Raw CloudTrail JSON on demand (htmx partial).
    page.locator("a.rawlink").first.click()
    raw = page.locator("#raw-1 pre.raw")
    raw.wait_for()
    assert '"eventName": "GetPasswordData"' in raw.inner_text()

    # Dismiss as benign (htmx POST with the CSRF token); the triage box and the header badge update.
    page.fill("#triage input[name=reason]", "Stratus red-team exercise")
    page.click("#triage button[value=dismiss]")
    page.wait_for_selector("#triage .status.st-dismissed")
    assert page.locator("#status-badge .status").inner_text() == "Dismissed"
    assert "Stratus red-team exercise" in page.locator("#triage .history").inner_text()

    # Back to the list: the default view (to triage) no longer holds it.
    page.goto(live_server.url + "/")
    assert page.locator("table.findings tbody tr").count() == 1
    assert page.locator(f"a[href='/findings/{PASSWORD_ID}']").count() == 0
    # Filtering with htmx: status "all" brings it back, marked Dismissed.
    page.select_option("select[name=status]", "all")
    page.wait_for_selector(f"a[href='/findings/{PASSWORD_ID}']")
    assert "status=all" in page.url
    row = page.locator("table.findings tbody tr", has=page.locator(f"a[href='/findings/{PASSWORD_ID}']"))
    assert row.locator(".status").inner_text() == "Dismissed"
    assert watch.dialogs == []
    assert watch.errors == []


def test_suppress_similar_from_the_page(live_server: LiveServer, page: Page, store: Path) -> None:
    watch = Watch(page)
    page.goto(f"{live_server.url}/findings/{PASSWORD_ID}")
    page.click("#triage details.suppress summary")
    page.fill("#triage details.suppress input[name=reason]", "red team")
    page.click("#triage details.suppress button")
    page.wait_for_selector("#suppress-result .flash")
    assert "Suppression rule added" in page.locator("#suppress-result").inner_text()
    assert "GetPasswordData" in (store / "rules.toml").read_text()
    assert watch.errors == []


def test_profile_and_pivots_render(live_server: LiveServer, page: Page) -> None:
    watch = Watch(page)
    page.goto(live_server.url + "/principal?arn=arn:aws:iam::123837392027:user/bert-jan")
    assert page.locator("table.heatmap td.h5").count() >= 1
    assert page.inner_text("p.usual-networks").startswith("usual networks: ")
    assert page.inner_text(".signin-habit") == "usually signs in with MFA (1 of 1 sign-ins)"
    page.wait_for_selector("#daily.js-plotly-plot")
    page.click("a[href='/ip/192.168.10.20']")
    page.wait_for_url("**/ip/192.168.10.20")
    assert "Who used it" in page.inner_text("main")
    page.fill("input[name=q]", "AS14618")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/asn/14618")
    assert "3.225.16.109" in page.inner_text("main")
    assert watch.errors == []


def _no_layout_break(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"page is {width}px wide"


def test_hostile_content_runs_no_script_and_keeps_layout(
    browser: Browser, hostile_template: tuple[Path, str], tmp_path: Path
) -> None:
    store = tmp_path / "hostile"
    shutil.copytree(hostile_template[0], store)
    fid = hostile_template[1]
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    watch = Watch(page)
    principal = "arn%3Aaws%3Aiam%3A%3A123837392027%3Arole%2Fevil%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    try:
        with LiveServer(store) as server:
            for path in ("/", f"/findings/{fid}", f"/principal?arn={principal}", "/ip/203.0.113.9", "/asn/64500"):
                page.goto(server.url + path)
                page.wait_for_load_state("load")
                _no_layout_break(page)
                assert page.evaluate("document.querySelectorAll('main img, main svg:not(.main-svg)').length") == 0
            page.goto(f"{server.url}/findings/{fid}")
            assert "<script>alert(1)</script>" in page.locator("h1.ftitle").inner_text()  # shown as text
            page.locator("a.rawlink").first.click()
            page.locator("#raw-1 pre.raw").wait_for()
            _no_layout_break(page)
            box: Any = page.locator("#raw-1 pre.raw").bounding_box()
            assert box["height"] <= 430  # the 100 kB error message scrolls inside its box
            page.click("#triage button[value=malicious]")
            page.wait_for_selector("#triage .status.st-malicious")
            _no_layout_break(page)
            page.screenshot(path=str(tmp_path / "hostile.png"))
    finally:
        context.close()
    assert watch.dialogs == []
    assert watch.errors == []


def _seed_story(store: Path) -> tuple[str, str]:
    """A story from the seeded findings, joined by the lake's own lineage; returns (story id, a member id)."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from trailsight.store import lineage
    from trailsight.store.findings import finding_from_dict, list_findings, save_findings
    from trailsight.store.layout import StoreLayout
    from trailsight.stories.correlate import build_stories
    from trailsight.stories.options import StoryOptions

    layout = StoreLayout(store)
    links = lineage.links_from_lake(layout, datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
    seeded = [finding_from_dict(row) for row in list_findings(store)]
    # The seed leaves out the session key detect would have listed: the key bert-jan's AssumeRole returned.
    seeded = [replace(f, access_keys=["ASIATFQR7NSCWLLE7IWW"]) if f.id == PASSWORD_ID else f for f in seeded]
    stories, members = build_stories(seeded, [], links, StoryOptions(), run_days=1.0)
    assert len(stories) == 1
    save_findings(store, [*stories, *members])
    return stories[0].id, stories[0].members[0]


def test_story_page_draws_the_steps_across_principals(live_server: LiveServer, page: Page, store: Path) -> None:
    story_id, member_id = _seed_story(store)
    watch = Watch(page)
    page.goto(live_server.url + f"/findings/{story_id}")
    page.wait_for_selector("#story-chart.js-plotly-plot")
    steps = page.locator("ol.story-steps li")
    assert steps.count() >= 3
    assert "AssumeRole" in page.inner_text("ol.story-steps") or "assumed role" in page.inner_text("ol.story-steps")
    assert page.locator("#story-chart .scatterlayer .trace").count() >= 2  # members and lineage links
    page.click(f"ol.story-steps a[href='/findings/{member_id}']")
    page.wait_for_url(f"**/findings/{member_id}")
    assert story_id in page.inner_text("p.story-link")
    _no_layout_break(page)
    assert watch.errors == []


def test_the_list_names_the_person_behind_a_shared_role(
    live_server: LiveServer, page: Page, store: Path, events: list[dict[str, Any]]
) -> None:
    from dataclasses import replace

    from webseed import ACCOUNT, user_finding

    from trailsight.store.findings import save_findings

    role = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_DeveloperAccess_0be60a5d800f328a"
    sso = replace(
        user_finding(events, fid="5501d0c0ffee0001"),
        principal=role,
        actor=f"{role}/ava.costa@northwind.io",
        identity_type="AssumedRole",
    )
    save_findings(store, [sso])
    watch = Watch(page)
    page.goto(live_server.url + "/")
    row = page.locator("table.findings tbody tr", has=page.locator("a[href='/findings/5501d0c0ffee0001']"))
    link = row.locator("a.arn")
    assert link.inner_text() == "ava.costa@northwind.io via AWSReservedSSO_DeveloperAccess"
    assert link.get_attribute("title") == f"{role}/ava.costa@northwind.io"
    assert "0be60a5d800f328a" not in row.inner_text()
    # the finding's own page says the same on its actor line
    page.goto(f"{live_server.url}/findings/5501d0c0ffee0001")
    assert "ava.costa@northwind.io via AWSReservedSSO_DeveloperAccess" in page.locator("dl").first.inner_text()
    assert watch.errors == []


def test_key_lineage_page_from_a_story(live_server: LiveServer, page: Page, store: Path) -> None:
    story_id, _ = _seed_story(store)
    watch = Watch(page)
    page.goto(live_server.url + f"/findings/{story_id}")
    page.click("p.story-keys a[href='/key/ASIATFQR7NSCWLLE7IWW']")
    page.wait_for_url("**/key/ASIATFQR7NSCWLLE7IWW")
    up = page.inner_text("table.lineage-up")
    assert "AssumeRole" in up
    assert "user/bert-jan" in up
    # Up the chain: the key bert-jan used to assume the role has its own page, and its lineage goes down.
    page.click("table.lineage-up a[href='/key/AKIATFQR7NSC8Q4X20BJ']")
    page.wait_for_url("**/key/AKIATFQR7NSC8Q4X20BJ")
    assert "ASIATFQR7NSCWLLE7IWW" in page.inner_text("table.lineage-down")
    _no_layout_break(page)
    assert watch.errors == []
