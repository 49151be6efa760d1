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
    principal_activity,
    principal_pivot,
    principal_profile,
    resolve_principal,
    role_assumers,
    roles_assumed,
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

    assert sum(d["events"] for d in p["daily"]) == len(mine)
    assert [d["day"] for d in p["daily"]] == ["2023-07-10"]


def test_principal_activity(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    with open_lake(invictus_store) as con:
        a = principal_activity(con, BERT)
        profile = principal_profile(con, BERT)
        nobody = principal_activity(con, "bert-jan")  # taken as it is: no name resolution
    mine = [r for r in invictus_records if is_bert(r)]
    assert a["events"] == len(mine)
    assert a["identity_types"] == ["IAMUser"]
    assert a["accounts"] == ["123837392027"]
    assert a["heatmap"] == profile["heatmap"]
    assert a["daily"] == profile["daily"] == [{"day": "2023-07-10", "events": len(mine)}]
    calls = Counter((r["eventSource"], r["eventName"]) for r in mine)
    by_name = Counter(r["eventName"] for r in mine)
    assert len(a["apis"]) == min(200, len(calls))  # one row per (service, API), the busiest 200
    assert a["apis"][0]["count"] == max(calls.values())
    summed: Counter[str] = Counter()
    for x in a["apis"]:  # ListTagsForResource of SSM and of RDS are two rows
        summed[x["event_name"]] += x["count"]
    assert all(n <= by_name[name] for name, n in summed.items())
    assert sum(summed.values()) > len(mine) // 2
    counts = [x["count"] for x in a["apis"]]
    assert counts == sorted(counts, reverse=True)
    assert a["networks"][0]["source_ip"] == "192.168.10.20"
    assert sum(n["count"] for n in a["networks"]) == len(mine)
    assert a["first_seen"] == profile["first_seen"]
    assert a["last_seen"] == profile["last_seen"]
    assert nobody["events"] == 0
    assert nobody["heatmap"] == [[0] * 24 for _ in range(7)]


def test_who_assumed_a_role(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    with open_lake(invictus_store) as con:
        up = role_assumers(con, ROLE)
        down = roles_assumed(con, BERT)
    assumed = [
        r
        for r in invictus_records
        if r["eventName"] == "AssumeRole"
        and not r.get("errorCode")
        and (r.get("requestParameters") or {}).get("roleArn") == ROLE
    ]
    direct = [link for link in up if link["depth"] == 1]
    assert sum(link["count"] for link in direct) == len(assumed)
    assert {link["source"] for link in direct} == {BERT}
    assert all(link["target"] == ROLE for link in direct)
    assert ROLE in {link["target"] for link in down}
    assert all(link["source"] == BERT and link["depth"] == 1 for link in down)
    ok = [r for r in invictus_records if r["eventName"] == "AssumeRole" and not r.get("errorCode") and is_bert(r)]
    assert sum(link["count"] for link in down) == len(ok)


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


def test_signin_habit_in_every_profile(invictus_store: Path, invictus_records: list[dict[str, Any]]) -> None:
    """bert-jan signs in with MFA; the Stratus user without; the role never signs in to the console."""
    logins = [r for r in invictus_records if is_bert(r) and r["eventName"] == "ConsoleLogin"]
    with_mfa = sum(1 for r in logins if (r.get("additionalEventData") or {}).get("MFAUsed") == "Yes")
    assert logins
    assert with_mfa == len(logins)
    expected = f"usually signs in with MFA ({with_mfa} of {len(logins)} sign-ins)"
    stratus = next(
        r["userIdentity"]["arn"]
        for r in invictus_records
        if r["eventName"] == "ConsoleLogin" and (r.get("additionalEventData") or {}).get("MFAUsed") == "No"
    )
    with open_lake(invictus_store) as con:
        assert principal_profile(con, BERT)["signin"]["line"] == expected
        assert principal_activity(con, BERT)["signin"]["line"] == expected
        assert principal_pivot(con, "bert-jan")["signin"]["line"] == expected
        assert principal_pivot(con, stratus)["signin"]["line"] == "signs in without MFA as a habit (1 of 1 sign-ins)"
        assert principal_activity(con, ROLE)["signin"]["line"] == "never signed in to the console"
