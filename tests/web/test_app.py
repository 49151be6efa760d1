"""The web UI's routes through FastAPI's TestClient: pages, partials, triage, tokens, CSRF, escaping."""

from __future__ import annotations

import json
import re
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import make_client
from webseed import ACCOUNT, HOSTILE_SESSION, HOSTILE_UA, ROLE, USER

from trailsight.findings.suppress import load_rules
from trailsight.store.findings import ensure_tables, feedback_for, finding_from_dict, get_finding

PASSWORD_ID = "f1a2b3c4d5e6f7a8"
USER_ID = "0b1c2d3e4f5a6b7c"
TOKEN = "s3cret-token-for-tests-0123456789"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def text_of(html: str) -> str:
    # <wbr> (a wrap point inside a name) shows no text; other tags separate words.
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.replace("<wbr>", "")))


# --------------------------------------------------------------------------- findings list


def test_list_shows_findings_sorted_by_risk(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.text.index(PASSWORD_ID) < r.text.index(USER_ID)  # risk 82 before 48
    body = text_of(r.text)
    assert "1–2 of 2 findings" in body
    assert "CredentialAccess" in body
    assert "PrivilegeEscalation" in body
    assert 'id="perday-data"' in r.text


def test_list_sort_by_time_and_severity(client: Any) -> None:
    by_time = client.get("/?sort=time").text
    assert by_time.index(USER_ID) < by_time.index(PASSWORD_ID)  # 12:09 is later than 11:54
    by_sev = client.get("/?sort=severity").text
    assert by_sev.index(PASSWORD_ID) < by_sev.index(USER_ID)
    assert client.get("/?sort=nonsense").status_code == 200  # unknown sort falls back to risk


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tactic=CredentialAccess", {PASSWORD_ID}),
        ("severity=Medium", {USER_ID}),
        ("confidence=High", {PASSWORD_ID}),
        ("principal=bert-jan", {USER_ID}),
        (f"principal={ROLE}", {PASSWORD_ID}),
        (f"account={ACCOUNT}", {PASSWORD_ID, USER_ID}),
        ("account=999999999999", set()),
        ("since=2023-07-10&until=2023-07-10", {PASSWORD_ID, USER_ID}),
        ("since=2023-07-11", set()),
        ("status=Dismissed", set()),
        ("status=all", {PASSWORD_ID, USER_ID}),
    ],
)
def test_list_filters(client: Any, query: str, expected: set[str]) -> None:
    html = client.get("/?" + query).text
    shown = {fid for fid in (PASSWORD_ID, USER_ID) if f"/findings/{fid}" in html}
    assert shown == expected


def test_list_bad_date_is_400(client: Any) -> None:
    r = client.get("/?since=yesterday")
    assert r.status_code == 400
    assert "expected a date" in r.text


def test_list_htmx_partial_is_only_the_results(client: Any) -> None:
    r = client.get("/?severity=High", headers={"HX-Request": "true", "HX-Target": "results"})
    assert r.status_code == 200
    assert "<html" not in r.text
    assert "<form" not in r.text
    assert PASSWORD_ID in r.text
    assert USER_ID not in r.text


def test_list_of_a_store_without_findings(tmp_path: Path) -> None:
    r = make_client(tmp_path).get("/")
    assert r.status_code == 200
    assert "no findings yet" in r.text


# --------------------------------------------------------------------------- finding page


def test_finding_page_reads_explanation_first(client: Any) -> None:
    r = client.get(f"/findings/{PASSWORD_ID}")
    assert r.status_code == 200
    body = text_of(r.text)
    order = [
        "What happened",
        "Anomalous APIs",
        "Network",
        "Unusual compared with what is usual",
        "Timeline",
        "Usual APIs of the principal (top 20)",
        "Usual APIs in the account (top 20)",
    ]
    positions = [body.index(h) for h in order]
    assert positions == sorted(positions)
    assert "called ec2:GetPasswordData 29 times" in body
    assert "IP geolocation by DB-IP" in body
    assert 'href="/ip/192.168.10.20"' in r.text
    assert "who assumed it" in body  # role chain link for a role
    assert "Client.UnauthorizedOperation ×29" in body


def test_finding_page_shows_the_network_class(client: Any) -> None:
    body = text_of(client.get(f"/findings/{USER_ID}").text)
    assert "IP Kind Class ASN Organisation" in body
    assert "3.225.16.109 AWS AWS AS14618 AMAZON-AES" in body


def test_finding_timeline_marks_the_unusual_events(client: Any, events: list[dict[str, Any]]) -> None:
    html = client.get(f"/findings/{PASSWORD_ID}").text
    unusual = [e for e in events if e["principal"] == ROLE and e["event_name"] == "GetPasswordData"]
    assert html.count('<tr class="unusual-row">') == len(unusual) == 29
    chart = json.loads(re.search(r'id="timeline-chart-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert sum(chart["unusual"]) == 29


def test_a_findings_session_calls_are_not_marked_unusual(
    client: Any, store: Path, events: list[dict[str, Any]]
) -> None:
    from dataclasses import replace

    from trailsight.store.findings import save_findings

    row = get_finding(store / "state.duckdb", PASSWORD_ID)
    assert row is not None
    f = finding_from_dict(row)
    # The session's other calls follow the unusual ones in event_ids (findings/session.py): say the
    # first 10 of the role's 29 calls were unusual and the other 19 its session's other calls.
    ordered = sorted((e for e in events if e["principal"] == ROLE), key=lambda e: e["event_time"])
    assert set(f.event_ids) == {e["event_id"] for e in ordered}
    save_findings(store, [replace(f, id="a1b2c3d4e5f6a7b8", count=10, event_ids=[e["event_id"] for e in ordered])])
    html = client.get("/findings/a1b2c3d4e5f6a7b8").text
    assert html.count('<tr class="unusual-row">') == 10
    # Saved again (a later run over the same range), its own events and its session's stay apart.
    again = replace(f, id="a1b2c3d4e5f6a7b8", count=12, event_ids=[e["event_id"] for e in ordered[2:]])
    save_findings(store, [again])
    row = get_finding(store / "state.duckdb", "a1b2c3d4e5f6a7b8")
    assert row is not None
    assert row["count"] == 14  # the first 10, and ordered[10:14] called unusual the second time
    assert row["event_ids"][:14] == [e["event_id"] for e in ordered[:14]]
    assert sorted(row["event_ids"]) == sorted(e["event_id"] for e in ordered)


def test_finding_by_unknown_id_is_404(client: Any) -> None:
    r = client.get("/findings/doesnotexist")
    assert r.status_code == 404
    assert "not in" in r.text


def test_raw_event_on_demand(client: Any, events: list[dict[str, Any]]) -> None:
    event = next(e for e in events if e["principal"] == ROLE and e["event_name"] == "GetPasswordData")
    r = client.get(f"/findings/{PASSWORD_ID}/events/{event['event_id']}/raw", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "<html" not in r.text
    assert f"&#34;eventID&#34;: &#34;{event['event_id']}&#34;" in r.text
    assert "&#34;eventName&#34;: &#34;GetPasswordData&#34;" in r.text
    missing = client.get(f"/findings/{PASSWORD_ID}/events/nope/raw")
    assert "not in this store" in missing.text


# --------------------------------------------------------------------------- triage and CSRF


def test_triage_needs_csrf(client: Any, store: Path) -> None:
    assert client.post(f"/findings/{PASSWORD_ID}/status", data={"action": "dismiss"}).status_code == 403
    r = client.post(f"/findings/{PASSWORD_ID}/status", data={"action": "dismiss", "csrf_token": "wrong"})
    assert r.status_code == 403
    assert get_finding(store, PASSWORD_ID)["status"] == "Open"  # type: ignore[index]


def test_triage_refuses_cross_origin(client: Any) -> None:
    token = csrf_of(client.get(f"/findings/{PASSWORD_ID}").text)
    r = client.post(
        f"/findings/{PASSWORD_ID}/status",
        data={"action": "dismiss", "csrf_token": token},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403


def test_dismiss_changes_status_and_list(client: Any, store: Path) -> None:
    token = csrf_of(client.get(f"/findings/{PASSWORD_ID}").text)
    r = client.post(
        f"/findings/{PASSWORD_ID}/status",
        data={"action": "dismiss", "reason": "red-team exercise", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/findings/{PASSWORD_ID}?msg=")
    assert get_finding(store, PASSWORD_ID)["status"] == "Dismissed"  # type: ignore[index]
    assert [f["action"] for f in feedback_for(store, PASSWORD_ID)] == ["Dismissed"]
    assert PASSWORD_ID not in client.get("/").text  # default view: to triage
    assert "Dismissed" in text_of(client.get("/?status=Dismissed").text)
    assert "red-team exercise" in client.get(f"/findings/{PASSWORD_ID}").text


@pytest.mark.parametrize(
    ("action", "status"), [("ack", "Acknowledged"), ("malicious", "Malicious"), ("reopen", "Open")]
)
def test_triage_actions_with_htmx(client: Any, store: Path, action: str, status: str) -> None:
    token = csrf_of(client.get(f"/findings/{USER_ID}").text)
    r = client.post(
        f"/findings/{USER_ID}/status",
        data={"action": action},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert r.status_code == 200
    assert '<aside id="triage"' in r.text
    assert "<html" not in r.text
    assert f"Marked {status}." in r.text
    assert get_finding(store, USER_ID)["status"] == status  # type: ignore[index]


def test_triage_unknown_action_is_400(client: Any) -> None:
    token = csrf_of(client.get(f"/findings/{USER_ID}").text)
    r = client.post(f"/findings/{USER_ID}/status", data={"action": "delete", "csrf_token": token})
    assert r.status_code == 400


def test_suppress_similar_writes_a_loadable_rule(client: Any, store: Path) -> None:
    token = csrf_of(client.get(f"/findings/{PASSWORD_ID}").text)
    assert client.post(f"/findings/{PASSWORD_ID}/suppress", data={"scope": ["apis"]}).status_code == 403
    r = client.post(
        f"/findings/{PASSWORD_ID}/suppress",
        data={"scope": ["account", "apis"], "reason": 'red team "drill"\n<b>', "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    rules = load_rules(store / "rules.toml")
    assert len(rules) == 1
    rule = rules[0]
    assert rule.principal == (ROLE,)
    assert rule.account == (ACCOUNT,)
    assert rule.api == ("GetPasswordData",)
    assert rule.reason == 'red team "drill"\n<b>'
    assert rule.matches(finding_from_dict(get_finding(store, PASSWORD_ID)))  # type: ignore[arg-type]
    # A second rule appends; the file stays valid TOML.
    client.post(f"/findings/{USER_ID}/suppress", data={"scope": ["networks"], "csrf_token": token})
    assert len(tomllib.loads((store / "rules.toml").read_text())["suppress"]) == 2


def test_suppress_to_a_custom_rules_file(store: Path, tmp_path: Path) -> None:
    rules = tmp_path / "conf" / "my-rules.toml"
    c = make_client(store, rules=rules)
    token = csrf_of(c.get(f"/findings/{USER_ID}").text)
    r = c.post(f"/findings/{USER_ID}/suppress", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "Suppression rule added" in r.text
    assert load_rules(rules)[0].principal == (USER,)


# --------------------------------------------------------------------------- profile and pivots


def test_principal_profile(client: Any) -> None:
    r = client.get("/principal", params={"arn": USER})
    assert r.status_code == 200
    body = text_of(r.text)
    assert "Working hours (UTC)" in body
    assert re.search(r'<td class="h[1-5]"', r.text)  # activity in the heatmap
    assert "AssumeRole" in body
    assert "frequent" in body
    assert "bert-jan was denied AssumeRole 13 times" in body  # findings history
    assert "192.168.10.20" in body
    assert "Behaves like a person" in body  # an IAM user's own keys: automation likelihood 0
    assert "Similar principals" in body
    assert "usual networks: " in body


def test_principal_without_events(client: Any) -> None:
    r = client.get("/principal", params={"arn": "arn:aws:iam::1:user/nobody"})
    assert r.status_code == 200
    assert "No events of this principal" in r.text
    assert client.get("/principal").status_code == 422


def test_ip_pivot(client: Any) -> None:
    body = text_of(client.get("/ip/192.168.10.20").text)
    assert "Who used it" in body
    assert "user/bert-jan" in body
    assert "First seen" in body
    assert "What they called" in body
    assert "bert-jan was denied AssumeRole 13 times" in body  # finding with this IP


def test_ip_pivot_shows_what_investigate_shows(client: Any, store: Path) -> None:
    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.pivots import ip_pivot

    with open_lake(store) as con:
        expected = ip_pivot(con, "192.168.10.20")
    body = text_of(client.get("/ip/192.168.10.20").text)
    assert expected["apis"]
    for api in expected["apis"]:
        assert f"{api['event_name']} {api['success'] + api['failure']:,}" in body


def test_asn_pivot(client: Any) -> None:
    body = text_of(client.get("/asn/14618").text)
    assert "3.225.16.109" in body
    assert "stratus-red-team-ec2-steal-credentials-role" in body
    assert client.get("/asn/notanumber").status_code == 422


def test_key_pivot(client: Any) -> None:
    body = text_of(client.get("/key/AKIATFQR7NSC8Q4X20BJ").text)
    assert "user/bert-jan" in body
    assert "What they called" in body


def test_key_page_shows_the_lineage_investigate_key_returns(client: Any, store: Path) -> None:
    from trailsight.investigate.lineage import key_lineage

    session_key = "ASIATFQR7NSCWLLE7IWW"  # what bert-jan's AssumeRole handed out
    chain = key_lineage(store, session_key)
    html = client.get(f"/key/{session_key}").text
    body = text_of(html)
    assert "Lineage" in body
    up = html.split('class="compact lineage-up"', 1)[1].split("</table>", 1)[0]
    assert [x["api"] for x in chain["upstream"]] == ["AssumeRole"]
    assert "AssumeRole" in up
    assert "/principal?arn=arn%3Aaws%3Aiam%3A%3A123837392027%3Auser/bert-jan" in up or "user/bert-jan" in up
    assert "stratus-red-team-ec2-get-password-data-role" in up
    # Downward: bert-jan's own long-term key made keys, users and sessions; each links to its page.
    own = client.get("/key/AKIATFQR7NSC8Q4X20BJ").text
    down = own.split('class="compact lineage-down"', 1)[1].split("</table>", 1)[0]
    made = key_lineage(store, "AKIATFQR7NSC8Q4X20BJ")["downstream"]
    assert made
    for x in made:
        if x["child_key"]:
            assert f'href="/key/{x["child_key"]}"' in down
    assert "No lineage" in text_of(client.get("/key/AKIANOSUCHKEY0000000").text)


def test_role_chain(client: Any) -> None:
    body = text_of(client.get("/role", params={"arn": ROLE}).text)
    assert "user/bert-jan → role/stratus-red-team-ec2-get-password-data-role" in body
    down = text_of(client.get("/role", params={"arn": USER}).text)
    assert "stratus-red-team-leave-org-role" in down  # roles bert-jan assumed


def test_principal_page_shows_what_investigate_returns(client: Any, store: Path) -> None:
    from urllib.parse import quote

    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.profile import principal_activity

    with open_lake(store) as con:
        expected = principal_activity(con, USER)
    r = client.get("/principal", params={"arn": USER})
    body = text_of(r.text)
    assert f"Events {expected['events']:,} Active days {expected['days']} " in body
    assert expected["apis"]
    for api in expected["apis"]:
        assert f"{api['service'] or ''} {api['event_name']} {api['count']:,} {api['days']} {api['failures']} " in body
    for net in expected["networks"]:  # each address links to its pivot
        assert f'href="/ip/{quote(net["source_ip"], safe="/")}"' in r.text
    busiest = max((n, d, h) for d, row in enumerate(expected["heatmap"]) for h, n in enumerate(row))
    n, day, hour = busiest
    assert f'title="{("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[day]} {hour}:00 — {n} events"' in r.text
    assert json_counts(r.text) == [d["events"] for d in expected["daily"]]
    assert expected["usual_networks"]["line"].startswith("usual networks: ")
    assert expected["usual_networks"]["line"] in body
    assert [c["net_class"] for c in expected["usual_networks"]["classes"]][:1] == ["private"]  # behind NAT


def json_counts(html: str) -> list[int]:
    """The daily chart's counts, from the JSON the page hands Plotly."""
    match = re.search(r'"counts":\s*\[([0-9, ]*)\]', html)
    assert match is not None
    return [int(x) for x in match.group(1).split(",") if x.strip()]


def test_role_page_shows_what_investigate_returns(client: Any, store: Path) -> None:
    from trailsight.findings.names import short_arn
    from trailsight.investigate.lake import open_lake
    from trailsight.investigate.pivots import role_assumers, roles_assumed

    with open_lake(store) as con:
        up = role_assumers(con, ROLE)
        down = roles_assumed(con, USER)
    assert up
    assert down
    body = text_of(client.get("/role", params={"arn": ROLE}).text)
    for link in up:
        assert f"{link['depth']} {short_arn(link['source'])} → {short_arn(link['target'])} {link['count']} " in body
    down_body = text_of(client.get("/role", params={"arn": USER}).text)
    for link in down:
        assert f"{short_arn(link['target'])} · chain {link['count']} " in down_body


@pytest.mark.parametrize(
    ("q", "target"),
    [
        ("192.168.10.20", "/ip/192.168.10.20"),
        ("AS14618", "/asn/14618"),
        ("AKIATFQR7NSC8Q4X20BJ", "/key/AKIATFQR7NSC8Q4X20BJ"),
        (USER, "/principal?arn=arn%3Aaws%3Aiam%3A%3A123837392027%3Auser%2Fbert-jan"),
        (PASSWORD_ID, f"/findings/{PASSWORD_ID}"),
        ("bert-jan", "/?principal=bert-jan&status=all"),
        ("", "/"),
    ],
)
def test_search_redirects(client: Any, q: str, target: str) -> None:
    r = client.get("/search", params={"q": q}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == target


def test_healthz_and_static(client: Any) -> None:
    assert client.get("/healthz").text == "ok"
    css = client.get("/static/app.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]


# --------------------------------------------------------------------------- token, host, headers


def test_token_missing_is_401_and_wrong_is_403(store: Path) -> None:
    c = make_client(store, token=TOKEN)
    for path in ("/", f"/findings/{PASSWORD_ID}", "/static/app.css", "/healthz"):
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer nope"}).status_code == 403
        assert c.get(path, headers={"X-Trailsight-Token": "nope"}).status_code == 403
    assert c.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert c.get("/", headers={"X-Trailsight-Token": TOKEN}).status_code == 200
    assert c.get("/?token=nope").status_code == 403


def test_token_in_url_sets_a_cookie_once(store: Path) -> None:
    c = make_client(store, token=TOKEN)
    r = c.get(f"/findings/{PASSWORD_ID}?token={TOKEN}&x=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/findings/{PASSWORD_ID}?x=1"  # the token leaves the URL
    cookie = r.headers["set-cookie"]
    assert "trailsight_token=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert c.get("/").status_code == 200  # the cookie now carries it
    r = c.get(f"//evil.example/?token={TOKEN}", follow_redirects=False)
    assert not r.headers["location"].startswith("//")  # stays on this server


def test_token_protects_posts_too(store: Path) -> None:
    c = make_client(store, token=TOKEN)
    assert c.post(f"/findings/{PASSWORD_ID}/status", data={"action": "dismiss"}).status_code == 401
    page = c.get(f"/findings/{PASSWORD_ID}", headers={"X-Trailsight-Token": TOKEN}).text
    r = c.post(
        f"/findings/{PASSWORD_ID}/status",
        data={"action": "dismiss"},
        headers={"X-Trailsight-Token": TOKEN},
    )
    assert r.status_code == 403  # token alone is not enough: CSRF too
    r = c.post(
        f"/findings/{PASSWORD_ID}/status",
        data={"action": "dismiss", "csrf_token": csrf_of(page)},
        headers={"X-Trailsight-Token": TOKEN},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_unknown_host_name_refused_without_token(store: Path) -> None:
    from conftest import TestClient

    from trailsight.web.app import create_app

    evil = TestClient(create_app(store), base_url="http://rebind.evil.example")
    assert evil.get("/").status_code == 403
    assert make_client(store).get("/", headers={"Host": "localhost:8080"}).status_code == 200


def test_security_headers_and_no_inline_script(client: Any) -> None:
    r = client.get(f"/findings/{PASSWORD_ID}")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    scripts = re.findall(r"<script([^>]*)>", r.text)
    assert scripts
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts)
    assert '"allowEval": false' in r.text


def test_hostile_values_are_escaped(hostile_template: tuple[Path, str]) -> None:
    store, fid = hostile_template
    c = make_client(store)
    pages = [
        "/",
        f"/findings/{fid}",
        f"/findings/{fid}/events/hostile-1/raw",
        "/principal?arn=" + "arn%3Aaws%3Aiam%3A%3A123837392027%3Arole%2Fevil%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/ip/203.0.113.9",
        "/asn/64500",
    ]
    for path in pages:
        r = c.get(path)
        assert r.status_code == 200, path
        assert HOSTILE_UA not in r.text, path
        assert HOSTILE_SESSION not in r.text, path
        assert "<img" not in r.text, path
        assert "<svg" not in r.text, path
    detail = c.get(f"/findings/{fid}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert len(detail) < 200_000  # the 100 kB error message is clipped, not repeated
    # JSON data blocks cannot be closed early by a value.
    for block in re.findall(r'type="application/json"[^>]*>(.*?)</script>', detail, re.S):
        assert "</" not in block
        json.loads(block)


# --------------------------------------------------------------------------- 100k findings


@pytest.mark.slow
def test_list_stays_fast_with_100k_findings(tmp_path: Path) -> None:
    db = tmp_path / "state.duckdb"
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with duckdb.connect(str(db)) as con:
        ensure_tables(con)
        con.execute(
            """
            INSERT INTO findings
            SELECT id, ftype, principal, principal, account, tactic, severity, label, conf, risk, score,
                   first_seen, first_seen + INTERVAL 5 MINUTE, status,
                   json_object('id', id, 'finding_type', ftype, 'title', 'finding ' || id, 'principal', principal,
                               'actor', principal, 'account_id', account, 'identity_type', 'IAMUser',
                               'first_seen', strftime(first_seen, '%Y-%m-%dT%H:%M:%SZ'),
                               'last_seen', strftime(first_seen + INTERVAL 5 MINUTE, '%Y-%m-%dT%H:%M:%SZ'),
                               'count', 1, 'score', score, 'risk_score', risk, 'severity', severity,
                               'severity_label', label, 'confidence', conf, 'tactic', tactic, 'status', status,
                               'event_ids', ['e' || i]),
                   now(), now()
            FROM (
                SELECT i, printf('%016x', hash(i)) AS id,
                       ['Discovery', 'Persistence', 'Impact', 'CredentialAccess'][1 + i % 4] AS tactic,
                       ['Discovery', 'Persistence', 'Impact', 'CredentialAccess'][1 + i % 4]
                           || ':IAMUser/AnomalousBehavior' AS ftype,
                       'arn:aws:iam::1111222233' || lpad(CAST(i % 10 AS VARCHAR), 2, '0') || ':user/u' || (i % 500)
                           AS principal,
                       '1111222233' || lpad(CAST(i % 10 AS VARCHAR), 2, '0') AS account,
                       [2.0, 5.0, 7.5][1 + i % 3] AS severity, ['Low', 'Medium', 'High'][1 + i % 3] AS label,
                       ['Low', 'Medium', 'High'][1 + (i // 3) % 3] AS conf, CAST(i % 101 AS INTEGER) AS risk,
                       (i % 1000) / 1000.0 AS score,
                       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_minutes(CAST(i * 3 AS BIGINT)) AS first_seen,
                       ['Open', 'Open', 'Open', 'Acknowledged', 'Dismissed'][1 + i % 5] AS status
                FROM range(100000) t(i)
            )
            """
        )
        assert con.execute("SELECT count(*) FROM findings").fetchone() == (100_000,)
    c = make_client(tmp_path)
    queries = [
        "/",
        "/?page=1000&size=50&status=all",  # deep page: the last ones
        "/?sort=time&status=all&page=500",
        "/?sort=severity&tactic=Impact&severity=High",
        "/?principal=u42&status=all",
        f"/?since={(t0 + timedelta(days=30)).date()}&until={(t0 + timedelta(days=60)).date()}",
    ]
    c.get("/")  # warm up templates
    for q in queries:
        start = time.perf_counter()
        r = c.get(q)
        elapsed = time.perf_counter() - start
        assert r.status_code == 200, q
        assert "findings" in r.text
        assert elapsed < 3.0, f"{q} took {elapsed:.2f}s"
    last = c.get("/?page=2000&size=50&status=all").text
    assert "99,951–100,000 of 100,000 findings" in text_of(last)


# --------------------------------------------------------------------------- serve beside a writer


def test_pages_wait_for_a_writer_in_another_process(client: Any, store: Path) -> None:
    """While another process (watch, detect) holds the state read-write, a page waits, then reads."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
            "time.sleep(1.5); con.close()",
            str(store / "state.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        r = client.get("/")
        waited = time.perf_counter() - start
        assert r.status_code == 200
        assert PASSWORD_ID in r.text
        assert waited > 0.3  # it really waited for the lock
    finally:
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()


def test_shared_role_finding_follows_its_actor(tmp_path: Path) -> None:
    """A finding about one person behind a shared SSO role shows that person's events, not the role's."""
    from webseed import normalise, write_lake

    from trailsight.finding import Finding
    from trailsight.store.findings import save_findings

    role = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123"
    t0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    rows = []
    for i, person in enumerate(["ana@example.com", "bo@example.com"] * 3):
        raw = {
            "eventID": f"sso-{i}",
            "eventTime": (t0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "eventName": "ListBuckets" if person.startswith("ana") else "GetObject",
            "eventSource": "s3.amazonaws.com",
            "sourceIPAddress": "198.51.100.4",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Dev_0123/{person}",
                "sessionContext": {"sessionIssuer": {"arn": role}},
            },
            "recipientAccountId": ACCOUNT,
        }
        row = normalise(raw, "sso.json", i)
        row["actor"] = f"{role}/{person}"
        rows.append(row)
    write_lake(tmp_path, rows)
    ana = f"{role}/ana@example.com"
    save_findings(
        tmp_path,
        [
            Finding(
                id="sso0000000000001",
                finding_type="Discovery:AssumedRole/AnomalousBehavior",
                title="ana listed buckets",
                principal=role,
                actor=ana,
                account_id=ACCOUNT,
                identity_type="AssumedRole",
                first_seen=t0,
                last_seen=t0 + timedelta(minutes=4),
                count=3,
                score=0.5,
                risk_score=50,
                severity=4.0,
                severity_label="Medium",
                confidence="Low",
                tactic="Discovery",
                tactic_id="TA0007",
                technique=None,
                event_ids=["sso-0"],
                reasons=[],
            )
        ],
    )
    c = make_client(tmp_path)
    html = c.get("/findings/sso0000000000001").text
    assert "Timeline of role/…/ana@example.com" in text_of(html)
    assert html.count("ListBuckets</strong>") == 3
    assert "GetObject" not in html
    profile = text_of(c.get("/principal", params={"arn": ana}).text)
    assert "Events 3 " in profile  # the person's own events only
    assert "Events 6 " in text_of(c.get("/principal", params={"arn": role}).text)  # the whole role
