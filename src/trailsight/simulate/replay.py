"""Replay the real Stratus Red Team detonation of invictus-ir/aws_dataset onto a simulated victim.

``data/invictus_stratus.json.gz`` holds, unmodified, the 1,146 calls of that capture whose user
agent names Stratus Red Team (github.com/invictus-ir/aws_dataset @4667aa9, MIT — the licence is
``data/LICENSE.invictus-ir``). The replay keeps every event name, event source, request shape and
error as captured and rewrites what ties it to its original account: the account id, the IAM
user (``bert-jan`` → the victim), access keys, the private source address (→ the attacker's),
times (same offsets from the chosen start), event and request ids, and the user agents (the
bare ``stratus-red-team_<uuid>`` agent becomes the Go SDK agent its tooling would otherwise send,
and Terraform's agent loses its ``stratus-red-team`` marker), so that no record names the attack.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from trailsight.simulate.records import iso, key_id, new_uuid
from trailsight.simulate.trail import Trail

SOURCE_ACCOUNT = "123837392027"
SOURCE_USER = "bert-jan"
GO_UA = "aws-sdk-go-v2/1.18.1 os/linux lang/go/1.19.8 md/GOOS/linux md/GOARCH/amd64"
_BARE = re.compile(r"^\[?stratus-red-team(_[0-9a-f-]{36})?\]?$")
_MARK = re.compile(r" ?stratus-red-team(_[0-9a-f-]{36})?")
_LEFT = re.compile(r"(?i)stratus-?red-?team")


@cache
def captured() -> tuple[dict[str, Any], ...]:
    """The captured Stratus records, in time order."""
    raw = resources.files("trailsight.simulate").joinpath("data/invictus_stratus.json.gz").read_bytes()
    records: list[dict[str, Any]] = json.loads(gzip.decompress(raw))["Records"]
    return tuple(records)


def _parse(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def replay(
    trail: Trail, *, start: float, account: str, user: str, user_id: str, user_key: str, ip: str
) -> list[tuple[float, dict[str, Any]]]:
    """Append the rewritten detonation from ``start``; returns (time, record) of what was added."""
    rng = trail.rng
    records = captured()
    t0 = _parse(records[0]["eventTime"])
    keys: dict[str, str] = {}
    source_ids = {
        str(r["userIdentity"]["principalId"])
        for r in records
        if r["userIdentity"].get("arn") == f"arn:aws:iam::{SOURCE_ACCOUNT}:user/{SOURCE_USER}"
    }
    added: list[tuple[float, dict[str, Any]]] = []
    for original in records:
        rec = dict(original)
        ua = str(rec.get("userAgent") or "")
        ua = GO_UA if _BARE.match(ua) else _MARK.sub("", ua)
        rec["userAgent"] = ua
        text = json.dumps(rec)
        for old in re.findall(r'"(A[KS]IA[A-Z0-9]{16})"', text):
            if old not in keys:
                keys[old] = user_key if old.startswith("AKIA") else key_id(rng, "ASIA")
        for old, new in keys.items():
            text = text.replace(old, new)
        for old in source_ids:
            text = text.replace(old, user_id)
        text = text.replace(SOURCE_ACCOUNT, account).replace(f"user/{SOURCE_USER}", f"user/{user}")
        text = text.replace(f'"userName": "{SOURCE_USER}"', f'"userName": "{user}"')
        text = _LEFT.sub("ops", text.replace("StratusRedTeam", "OpsTemporary"))
        rec = json.loads(text)
        ts = start + (_parse(original["eventTime"]) - t0)
        if not trail.start <= ts < trail.end:
            continue
        rec["eventTime"] = iso(ts)
        rec["eventID"] = new_uuid(rng)
        rec["requestID"] = new_uuid(rng)
        if rec.get("sourceIPAddress", "").startswith(("192.168.", "10.")):
            rec["sourceIPAddress"] = ip
        if "sharedEventID" in rec:
            rec["sharedEventID"] = new_uuid(rng)
        rec["recipientAccountId"] = account
        trail.records.append((ts, rec))
        added.append((ts, rec))
    return added
