"""The "usual networks" profile line: classes against the principal's days, the learned egress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from sample_events import make_events
from trailsight.investigate.networks import network_line, usual_networks

START = datetime(2025, 3, 3, tzinfo=UTC)
ACCOUNT = "111111111111"
HOME = {"source_ip": "84.128.1.1", "asn": 3320, "as_org": "Deutsche Telekom AG", "net_class": "residential"}
OFFICE = {"source_ip": "38.94.179.20", "asn": 174, "as_org": "Cogent Communications", "net_class": "other"}
PHONE = {"source_ip": "172.58.1.1", "asn": 21928, "as_org": "T-Mobile USA, Inc.", "net_class": "mobile"}


def _user(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def _con(rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    events = make_events(rows)
    con.register("events_in", events)
    con.execute("CREATE TABLE events AS SELECT * FROM events_in")
    return con


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for d in range(20):
        day = START + timedelta(days=d)
        rows.append({"event_time": day + timedelta(hours=8), "principal": _user("alice"), **HOME})
        if d % 2 == 0:
            rows.append({"event_time": day + timedelta(hours=10), "principal": _user("alice"), **OFFICE})
        for n in range(5):
            rows.append({"event_time": day + timedelta(hours=11), "principal": _user(f"colleague{n}"), **OFFICE})
    rows.append({"event_time": START + timedelta(days=3, hours=20), "principal": _user("alice"), **PHONE})
    return [{**r, "net_prefix": r["source_ip"].rsplit(".", 1)[0] + ".0/24"} for r in rows]


def test_usual_networks_name_classes_and_the_learned_egress() -> None:
    con = _con(_rows())
    got = usual_networks(con, "principal = ?", [_user("alice")])
    assert got["line"] == "usual networks: home broadband (Deutsche Telekom), office egress (Cogent Communications)"
    by_class = {c["net_class"]: c for c in got["classes"]}
    assert by_class["egress"]["days"] == 10
    assert by_class["mobile"]["usual"] is False  # one evening on the phone is not a habit


def test_lines_for_no_class_and_no_habit() -> None:
    assert network_line([]) == "usual networks: not known (no network classes in the lake)"
    once = [{"net_class": "vpn", "label": "commercial VPN", "orgs": [], "usual": False}]
    assert network_line(once) == "usual networks: none yet (no class on 10% of its days)"
