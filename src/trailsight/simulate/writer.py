"""Write records the way CloudTrail delivers them to S3.

``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<rand>.json.gz``:
one gzipped ``{"Records": [...]}`` per account, region and five minutes, stamped
with the delivery time (the end of its five minutes) and filed under that day.
Gzip headers carry no time or name, so the same records give the same bytes.
"""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from trailsight.simulate.trail import Trail

WINDOW_S = 300
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def file_path(out: Path, account: str, region: str, window_start: int, rand: str) -> Path:
    """The S3-layout path of one delivery file."""
    stamp = datetime.fromtimestamp(window_start + WINDOW_S, UTC)
    return (
        out
        / "AWSLogs"
        / account
        / "CloudTrail"
        / region
        / stamp.strftime("%Y/%m/%d")
        / f"{account}_CloudTrail_{region}_{stamp.strftime('%Y%m%dT%H%MZ')}_{rand}.json.gz"
    )


def random_suffix(rng: random.Random) -> str:
    """The 16-character random part of a delivery file name."""
    return "".join(rng.choice(_ALNUM) for _ in range(16))


def write_gz(path: Path, payload: bytes, compresslevel: int) -> None:
    """Write ``payload`` gzipped with a fixed header (mtime 0, no file name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=compresslevel, mtime=0))


def write_trail(out: Path, trail: Trail, rng: random.Random, *, compresslevel: int = 6) -> int:
    """Sort the trail by time and write it in five-minute files; returns the number of files."""
    trail.records.sort(key=lambda item: item[0])
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for ts, rec in trail.records:
        key = (rec["recipientAccountId"], rec["awsRegion"], int(ts) // WINDOW_S * WINDOW_S)
        groups.setdefault(key, []).append(rec)
    made: set[Path] = set()
    for (account, region, window), recs in sorted(groups.items()):
        path = file_path(out, account, region, window, random_suffix(rng))
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(gzip.compress(orjson.dumps({"Records": recs}), compresslevel=compresslevel, mtime=0))
    return len(groups)
