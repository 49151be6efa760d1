"""Cheap polling of an organisation trail's bucket: list only the date folders that can hold new files.

An organisation trail writes ``AWSLogs/o-<org>/<account>/CloudTrail/<region>/YYYY/MM/DD/``;
listing the whole bucket every cycle costs one call per 1,000 objects ever written and never
finishes on a large organisation. :class:`RecentTrailLister` instead

1. **discovers** the ``<account>/CloudTrail/<region>/`` folders once, with delimiter listings
   (one call per folder level, not per object), and caches them in the store
   (``watch-s3-prefixes.json``), refreshing the cache every :data:`REDISCOVER` (new accounts
   and regions appear);
2. each cycle lists only ``<region folder>/<yesterday>/`` and ``<today>/`` (UTC) — a file for
   events just before midnight lands in the next day's folder, so yesterday is still read.

The first cycle of a source (no cache yet) lists the source in full: that is the backfill,
which also gives the detectors their history. A source whose prefix is already inside one
region folder (or deeper), or that holds no CloudTrail layout, is listed in full every time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from trailsight.errors import IngestError
from trailsight.ingest.sources import SourceFile, is_cloudtrail_key, path_account, split_s3_uri

REDISCOVER: Final = timedelta(hours=6)
CACHE_NAME: Final = "watch-s3-prefixes.json"
_REGION_DIR: Final = re.compile(r"(?:^|/)\d{12}/CloudTrail/[A-Za-z0-9_-]+/$")
_ACCOUNT: Final = re.compile(r"\d{12}")
_ORG: Final = re.compile(r"o-[a-z0-9]+")


@dataclass(kw_only=True)
class ListingReport:
    """What one cycle's listing cost."""

    mode: str = "full"  # "full" (first cycle, or no org layout) | "recent"
    list_calls: int = 0
    region_prefixes: int = 0
    listed_keys: int = 0
    discovered: bool = False
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "listing": self.mode,
            "list_calls": self.list_calls,
            "region_prefixes": self.region_prefixes,
            "listed_keys": self.listed_keys,
            "discovered": self.discovered,
        }


def _common_prefixes(client: Any, bucket: str, prefix: str, report: ListingReport) -> Iterator[str]:
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        if token:
            kwargs["ContinuationToken"] = token
        page = client.list_objects_v2(**kwargs)
        report.list_calls += 1
        for cp in page.get("CommonPrefixes", ()):
            yield str(cp["Prefix"])
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")


def discover_region_prefixes(client: Any, bucket: str, prefix: str, report: ListingReport) -> list[str] | None:
    """The ``<account>/CloudTrail/<region>/`` folders under ``prefix``; None when the layout does not apply."""
    start = prefix if not prefix or prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    if re.search(r"\d{12}/CloudTrail/[A-Za-z0-9_-]+/.+", start):
        return None  # already inside a region folder: a full listing is as cheap
    found: list[str] = []
    stack = [start]
    while stack:
        here = stack.pop()
        if _REGION_DIR.search(here):
            found.append(here)
            continue
        parts = [p for p in here.split("/") if p]
        for sub in _common_prefixes(client, bucket, here, report):
            name = sub.rstrip("/").rsplit("/", 1)[-1]
            last = parts[-1] if parts else ""
            follow = (
                name == "AWSLogs"
                or (_ORG.fullmatch(name) is not None and last == "AWSLogs")
                or (_ACCOUNT.fullmatch(name) is not None and (last == "AWSLogs" or _ORG.fullmatch(last) is not None))
                or (name == "CloudTrail" and _ACCOUNT.fullmatch(last) is not None)
                or last == "CloudTrail"
            )
            if follow:
                stack.append(sub)
    return sorted(found) or None


class RecentTrailLister:
    """Lists an ``s3://`` org-trail source cheaply across cycles (see the module docstring)."""

    def __init__(self, source: str, store: Path, client: Any) -> None:
        self.source = source
        self.bucket, self.prefix = split_s3_uri(source)
        self.cache_path = store / CACHE_NAME
        self.client = client

    def _load(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.cache_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        entry = data.get(self.source) if isinstance(data, dict) else None
        return entry if isinstance(entry, dict) else {}

    def _save(self, entry: dict[str, Any]) -> None:
        try:
            data = orjson.loads(self.cache_path.read_bytes())
            if not isinstance(data, dict):
                data = {}
        except (OSError, orjson.JSONDecodeError):
            data = {}
        data[self.source] = entry
        tmp = self.cache_path.with_suffix(".tmp")
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        tmp.replace(self.cache_path)

    def plan(self, now: datetime) -> tuple[list[SourceFile], ListingReport]:
        """The sources to ingest this cycle, and what listing them cost."""
        from botocore.exceptions import BotoCoreError, ClientError

        report = ListingReport()
        entry = self._load()
        try:
            discovered_at = datetime.fromisoformat(str(entry.get("discovered_at")))
        except ValueError:
            discovered_at = None
        try:
            if discovered_at is None or now - discovered_at >= REDISCOVER or "prefixes" not in entry:
                prefixes = discover_region_prefixes(self.client, self.bucket, self.prefix, report)
                report.discovered = True
                first = discovered_at is None
                self._save({"discovered_at": now.isoformat(), "prefixes": prefixes})
                if first or prefixes is None:
                    # the first cycle is the backfill: list everything once
                    return list(self._list_day(self.prefix, report, any_name=prefixes is None)), report
            else:
                prefixes = entry["prefixes"]
            if prefixes is None:
                return list(self._list_day(self.prefix, report, any_name=True)), report
            report.mode = "recent"
            report.region_prefixes = len(prefixes)
            days = [(now - timedelta(days=1)).date(), now.date()]
            sources: list[SourceFile] = []
            for region in prefixes:
                for day in days:
                    sources.extend(self._list_day(f"{region}{day:%Y/%m/%d}/", report))
        except (ClientError, BotoCoreError) as exc:
            raise IngestError(f"{self.source}: cannot list S3 objects: {exc}") from None
        return sources, report

    def _list_day(self, prefix: str, report: ListingReport, *, any_name: bool = False) -> Iterator[SourceFile]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            report.list_calls += 1
            for obj in page.get("Contents", ()):
                report.listed_keys += 1
                key = str(obj["Key"])
                if is_cloudtrail_key(key, any_name=any_name):
                    yield SourceFile(
                        key=f"s3://{self.bucket}/{key}",
                        size=int(obj.get("Size", 0)),
                        version=str(obj.get("ETag", "")).strip('"'),
                        account=path_account(key),
                    )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")


def now_utc() -> datetime:
    """The wall clock (a function, so tests can replace it)."""
    return datetime.now(UTC)


__all__ = ["CACHE_NAME", "REDISCOVER", "ListingReport", "RecentTrailLister", "discover_region_prefixes", "now_utc"]
