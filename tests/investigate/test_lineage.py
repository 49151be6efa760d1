"""Lineage from the real invictus-ir detonation: keys, users, login profiles, role sessions and trust."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trailsight.investigate.lineage import key_lineage
from trailsight.store import lineage
from trailsight.store.findings import connect_state
from trailsight.store.layout import StoreLayout

BERT = "arn:aws:iam::123837392027:user/bert-jan"
SESSION_KEY = "ASIATFQR7NSCWLLE7IWW"
SINCE = datetime(2020, 1, 1, tzinfo=UTC)
UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


def _links(store: Path) -> list[lineage.Link]:
    return lineage.links_from_lake(StoreLayout(store), SINCE, UNTIL)


def test_links_from_the_detonation_match_its_records(
    invictus_store: Path, invictus_records: list[dict[str, Any]]
) -> None:
    links = _links(invictus_store)
    by_kind: dict[str, list[lineage.Link]] = {}
    for x in links:
        by_kind.setdefault(x.link, []).append(x)
    ok = [r for r in invictus_records if not r.get("errorCode")]
    created_keys = {
        r["responseElements"]["accessKey"]["accessKeyId"] for r in ok if r["eventName"] == "CreateAccessKey"
    }
    assert {x.child_key for x in by_kind["access_key"]} == created_keys
    assert all(x.parent == BERT for x in by_kind["access_key"])
    users = {r["requestParameters"]["userName"] for r in ok if r["eventName"] == "CreateUser"}
    assert {x.child for x in by_kind["user"]} == {lineage.user_node("123837392027", u) for u in users}
    assert {x.api for x in by_kind["login_profile"]} == {"CreateLoginProfile"}
    # Only successful AssumeRole calls that handed out credentials make a link.
    assumed = [r for r in ok if r["eventName"] == "AssumeRole" and (r.get("responseElements") or {}).get("credentials")]
    assert len(by_kind["assume_role"]) == len(assumed)
    session = next(x for x in by_kind["assume_role"] if x.child_key == SESSION_KEY)
    assert session.parent == BERT
    assert session.child is not None
    assert session.child.startswith("arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role/")
    # UpdateAssumeRolePolicy opened the backdoor role to another account.
    trust = by_kind["trust"]
    assert [x.child for x in trust] == ["arn:aws:iam::123837392027:role/stratus-red-team-backdoor-r-role"]
    assert trust[0].detail == "arn:aws:iam::193672423079:root"


def test_lineage_is_stored_once_and_read_back(invictus_store: Path, tmp_path: Path) -> None:
    links = _links(invictus_store)
    db = tmp_path / "state.duckdb"
    with connect_state(db, read_only=False) as con:
        lineage.save_links(con, links)
        lineage.save_links(con, links)  # a second run over the same range adds nothing
        back = lineage.stored_links(con)
        count = con.execute("SELECT count(*) FROM lineage").fetchone()
    assert count is not None
    assert count[0] == len(links)
    assert back == links


def test_outside_principals_of_trust_policies() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::222233334444:root", "111122223333"]}}]}
    assert lineage.outside_principals(doc, "111122223333") == ["arn:aws:iam::222233334444:root"]
    assert lineage.outside_principals(json.dumps({"Statement": {"Effect": "Allow", "Principal": "*"}}), "1") == ["*"]
    assert lineage.outside_principals({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2"}}]}, "1") == []
    assert lineage.outside_principals("%7B%22Statement%22%3A%5B%5D%7D", "1") == []
    assert lineage.outside_principals("not json", "1") == []


def test_key_lineage_walks_up_to_the_user_that_assumed_the_role(invictus_store: Path) -> None:
    d = key_lineage(invictus_store, SESSION_KEY)
    assert [x["api"] for x in d["upstream"]] == ["AssumeRole"]
    assert d["upstream"][0]["parent"] == BERT
    assert d["upstream"][0]["child_key"] == SESSION_KEY


def test_investigate_key_prints_the_lineage(invictus_store: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trailsight", "investigate", "key", SESSION_KEY, "--store", str(invictus_store)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Lineage of {SESSION_KEY}" in out
    assert "user/bert-jan" in out
    assert "AssumeRole" in out
    js = subprocess.run(
        [
            sys.executable,
            "-m",
            "trailsight",
            "investigate",
            "key",
            SESSION_KEY,
            "-s",
            str(invictus_store),
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(js)["lineage"]["upstream"][0]["parent"] == BERT
