"""Pivots and profiles on the real invictus-ir capture, checked against the raw records."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trailsight.errors import StoreError
from trailsight.investigate import (
    ip_pivot,
    key_pivot,
    open_lake,
    principal_pivot,
    principal_profile,
    resolve_principal,
)

BERT = "arn:aws:iam::123837392027:user/bert-jan"
ROLE = "arn:aws:iam::123837392027:role/stratus-red-team-ec2-get-password-data-role"
SESSION_KEY = "ASIATFQR7NSCWLLE7IWW"


def is_bert(record: dict[str, Any]) -> bool:
    """bert-jan's records (one carries only its user name, no ARN)."""
    ui = record["userIdentity"]
    return bool(ui.get("arn") == BERT or (ui.get("type") == "IAMUser" and ui.get("userName") == "bert-jan"))


def test_ip_pivot_matches_the_records(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    mine = [r for r in invictus_records if r.get("sourceIPAddress") == "10.8.8.10"]
    with open_lake(invictus_store) as con:
        d = ip_pivot(con, "10.8.8.10")
    assert d["events"] == len(mine)
    assert d["failures"] == sum(1 for r in mine if r.get("errorCode"))
    assert d["first_seen"] == min(r["eventTime"] for r in mine)
    assert d["network"]["ip_kind"] == "private"
    assert d["principals"][0]["principal"] == BERT
    assert d["principals"][0]["events"] == sum(1 for r in mine if is_bert(r))
    assert sum(p["events"] for p in d["principals"]) == len(mine)
    by_api = Counter((r["eventSource"].removesuffix(".amazonaws.com"), r["eventName"]) for r in mine)
    assert {(a["service"], a["event_name"]): a["success"] + a["failure"] for a in d["apis"]} == dict(by_api)


def test_key_pivot_finds_how_the_key_was_issued(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    with open_lake(invictus_store) as con:
        d = key_pivot(con, SESSION_KEY)
    used = [r for r in invictus_records if r["userIdentity"].get("accessKeyId") == SESSION_KEY]
    assert d["events"] == len(used) == 29
    assert [i["event_name"] for i in d["issued_by"]] == ["AssumeRole"]
    assert d["issued_by"][0]["principal"] == BERT
    assert d["issued_by"][0]["role_arn"] == ROLE
    assert d["principals"][0]["principal"] == ROLE
    assert d["apis"] == [
        {
            "service": "ec2",
            "event_name": "GetPasswordData",
            "success": 0,
            "failure": 29,
            "error_codes": {"Client.UnauthorizedOperation": 29},
            "first_seen": d["first_seen"],
            "last_seen": d["last_seen"],
        }
    ]


def test_role_chains_of_a_principal(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    with open_lake(invictus_store) as con:
        d = principal_pivot(con, "bert-jan")
    assert d["principal"] == BERT
    assert d["events"] == sum(1 for r in invictus_records if is_bert(r))
    assumed = [r for r in invictus_records if r["eventName"] == "AssumeRole" and is_bert(r)]
    assert sum(c["attempts"] for c in d["role_chains"]) == len(assumed)
    refused = [c for c in d["role_chains"] if c["failures"]]
    assert refused
    assert all(c["role_arn"] for c in refused)  # taken from the error message when refused
    session = next(c for c in d["role_chains"] if SESSION_KEY in c["access_keys"])
    assert session["role_arn"] == ROLE
    assert session["session"]["events"] == 29
    assert session["session"]["apis"][0]["event_name"] == "GetPasswordData"
    assert session["session"]["apis"][0]["failure"] == 29


def test_profile(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    with open_lake(invictus_store) as con:
        p = principal_profile(con, BERT)
    mine = [r for r in invictus_records if is_bert(r)]
    assert p["events"] == len(mine)
    assert sum(map(sum, p["heatmap"])) == len(mine)
    assert len(p["heatmap"]) == 7
    assert all(len(row) == 24 for row in p["heatmap"])
    # 2023-07-10 was a Monday; the capture runs 11:54-12:35 UTC.
    assert p["heatmap"][0][11] + p["heatmap"][0][12] == len(mine)
    decrypt = next(a for a in p["apis"] if a["value"] == "Decrypt")
    assert decrypt["count"] == sum(1 for r in mine if r["eventName"] == "Decrypt")
    assert decrypt["frequency"] == "frequent"
    assert p["source_ips"][0]["value"] == "192.168.10.20"


def test_hostile_lookups_are_data(invictus_store: Path) -> None:
    with open_lake(invictus_store) as con:
        assert resolve_principal(con, "%' OR 1=1 --") == []
        assert resolve_principal(con, "%") == []
        assert ip_pivot(con, "' OR ''='")["events"] == 0
        assert principal_pivot(con, "nobody")["matches"] == []


def test_open_lake_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a trailsight store"), open_lake(tmp_path):
        pass


def test_a_person_behind_an_sso_role(tmp_path: Path) -> None:
    import duckdb
    import pyarrow as pa

    from trailsight.schema import EVENT_SCHEMA

    role = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123"
    rows = []
    for i, (person, api) in enumerate(
        [("ava@example.com", "ListBuckets")] * 3 + [("bob@example.com", "GetObject")] * 2
    ):
        rows.append(
            {
                "event_id": f"e{i}",
                "event_time": datetime(2025, 3, 3, 9, i, tzinfo=UTC),
                "event_date": datetime(2025, 3, 3, tzinfo=UTC).date(),
                "account_id": "111122223333",
                "event_name": api,
                "service": "s3",
                "principal": role,
                "actor": f"{role}/{person}",
                "session_name": person,
                "identity_type": "AssumedRole",
            }
        )
    table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    con = duckdb.connect()
    con.register("events", table)
    d = principal_pivot(con, "ava@example.com")
    assert d["actor"] == f"{role}/ava@example.com"
    assert d["principal"] == role
    assert d["events"] == 3
    assert [a["event_name"] for a in d["apis"]] == ["ListBuckets"]
    p = principal_profile(con, "bob@example.com")
    assert p["events"] == 2
    assert p["apis"][0]["value"] == "GetObject"
    whole = principal_pivot(con, "AWSReservedSSO_Dev_0123")
    assert whole["actor"] is None
    assert whole["events"] == 5
