"""The lake as the web UI reads it, and the few queries only its pages run.

:class:`Lake` opens a store's Parquet lake for one page (an in-memory DuckDB whose view
``events`` the :mod:`trailsight.investigate` queries read: principal profiles, role chains, the
principals and APIs of a pivot). Findings come from :mod:`trailsight.store.findings`. What is
left here is page-only: a finding's timeline and raw records, and the pivot page's network,
related values and recent events. Every query is parameterised: CloudTrail values are
attacker-controlled and never become SQL text. Each call opens its own connection and closes
it, so the web server never holds the state database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from trailsight.errors import StoreError
from trailsight.investigate.pivots import api_summary, principal_summary
from trailsight.store.layout import StoreLayout

#: Columns shown in event tables (``raw`` is fetched only on demand).
EVENT_VIEW_COLUMNS = (
    "event_id",
    "event_time",
    "event_name",
    "service",
    "read_only",
    "error_code",
    "error_message",
    "source_ip",
    "user_agent",
    "ua_family",
    "session_name",
    "access_key_id",
    "region",
    "principal",
    "identity_type",
    "ip_kind",
    "country",
    "city",
    "asn",
    "as_org",
)


# --------------------------------------------------------------------------- state database


@dataclass(frozen=True, kw_only=True)
class FindingFilters:
    """The filters of the findings list (same meaning as :func:`trailsight.store.findings.list_findings`)."""

    tactic: str | None = None
    severity: str | None = None
    confidence: str | None = None
    status: str | None = None
    principal: str | None = None
    account: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``list_findings`` / ``count_findings``."""
        return {
            "tactic": self.tactic,
            "severity": self.severity,
            "confidence": self.confidence,
            "status": self.status,
            "principal": self.principal,
            "account": self.account,
            "since": self.since,
            "until": self.until,
        }


def state_exists(store: Path) -> bool:
    """Whether the store has a state database yet."""
    return StoreLayout(store).state.is_file()


# --------------------------------------------------------------------------- the lake


def lake_files(store: Path, since: datetime | None = None, until: datetime | None = None) -> list[Path]:
    """The Parquet files of the lake, only the days of ``[since, until)`` when given."""
    layout = StoreLayout(store)
    try:
        from trailsight.store import lake as lake_module
    except ImportError:
        lake_module = None  # type: ignore[assignment]
    if lake_module is not None and hasattr(lake_module, "lake_files"):
        try:
            return [Path(p) for p in lake_module.lake_files(layout, since, until)]
        except (StoreError, duckdb.Error):
            return []  # no state database or no lake_files table yet
    if not layout.lake.is_dir():
        return []
    return sorted(layout.lake.glob("account_id=*/event_date=*/*.parquet"))


class Lake:
    """Read-only access to the events of one store's lake (an in-memory DuckDB over the Parquet files)."""

    def __init__(self, store: Path, since: datetime | None = None, until: datetime | None = None) -> None:
        self.files = lake_files(store, since, until)
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the in-memory connection."""
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def empty(self) -> bool:
        """Whether the lake has no files."""
        return not self.files

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The in-memory DuckDB connection whose view ``events`` is the lake (made on first use)."""
        if self._con is None:
            con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
            rel = con.read_parquet([str(f) for f in self.files], union_by_name=True, hive_partitioning=False)
            # Naive UTC wall-clock times inside, aware UTC datetimes outside (no pytz needed).
            rel.select("* REPLACE (timezone('UTC', event_time) AS event_time)").create_view("events")
            self._con = con
        return self._con

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run ``sql`` (over the view ``events``) and return rows as dicts; [] when the lake is empty."""
        if self.empty:
            return []
        cur = self.connection().execute(sql, [_naive_utc(p) for p in params])
        names = [d[0] for d in cur.description or []]
        return [{n: _aware(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of ``sql``, or None."""
        rows = self.rows(sql, params)
        return rows[0] if rows else None


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_COLS = ", ".join(EVENT_VIEW_COLUMNS)


def principal_events(
    lake: Lake, actor: str, since: datetime, until: datetime, limit: int = 400
) -> list[dict[str, Any]]:
    """Events of ``actor`` in ``[since, until]`` by time: a finding's actor is its principal, or the
    person behind a shared role (``<role ARN>/<session name>``)."""
    return lake.rows(
        f"SELECT {_COLS} FROM events WHERE actor = ? AND event_time BETWEEN ? AND ? "
        "ORDER BY event_time, event_id LIMIT ?",
        [actor, since, until, limit],
    )


def raw_event(lake: Lake, event_id: str) -> str | None:
    """The raw CloudTrail record of one event, pretty-printed, or None when it is not in the lake."""
    row = lake.one("SELECT raw FROM events WHERE event_id = ? LIMIT 1", [event_id])
    if row is None or row["raw"] is None:
        return None
    text = str(row["raw"])
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


@dataclass(frozen=True, kw_only=True)
class Pivot:
    """Who used an IP, ASN or access key, since when, and what they called."""

    kind: str  # ip | asn | key
    value: str
    events: int
    first_seen: datetime | None
    last_seen: datetime | None
    network: dict[str, Any] | None
    principals: list[dict[str, Any]]
    apis: list[dict[str, Any]]
    related: list[dict[str, Any]]  # IPs of an ASN or key; ASNs of an IP
    recent: list[dict[str, Any]]


def pivot(lake: Lake, kind: str, value: str) -> Pivot:
    """Pivot on ``kind`` (ip, asn, key) = ``value`` over the whole lake."""
    column = {"ip": "source_ip", "asn": "asn", "key": "access_key_id"}[kind]
    param: Any = int(value) if kind == "asn" else value
    cond = f"{column} = ?"
    stats = lake.one(
        f"SELECT count(*) AS n, min(event_time) AS first, max(event_time) AS last FROM events WHERE {cond}", [param]
    )
    network = lake.one(
        "SELECT any_value(ip_kind) AS ip_kind, any_value(asn) AS asn, any_value(as_org) AS as_org, "
        f"any_value(city) AS city, any_value(country) AS country FROM events WHERE {cond}",
        [param],
    )
    # Who used it and what they called: the same summaries as `trailsight investigate`.
    con = None if lake.empty else lake.connection()
    principals = principal_summary(con, cond, [param]) if con is not None else []
    apis = api_summary(con, cond, [param]) if con is not None else []
    if kind == "ip":
        related = lake.rows(
            "SELECT CAST(asn AS VARCHAR) AS value, any_value(as_org) AS label, count(*) AS count FROM events "
            f"WHERE {cond} AND asn IS NOT NULL GROUP BY asn ORDER BY count DESC LIMIT 20",
            [param],
        )
    else:
        related = lake.rows(
            "SELECT source_ip AS value, any_value(country) AS label, count(*) AS count FROM events "
            f"WHERE {cond} AND source_ip IS NOT NULL GROUP BY source_ip ORDER BY count DESC LIMIT 50",
            [param],
        )
    recent = lake.rows(f"SELECT {_COLS} FROM events WHERE {cond} ORDER BY event_time DESC LIMIT 50", [param])
    n = int(stats["n"]) if stats else 0
    return Pivot(
        kind=kind,
        value=value,
        events=n,
        first_seen=stats["first"] if stats and n else None,
        last_seen=stats["last"] if stats and n else None,
        network=network if n else None,
        principals=principals,
        apis=apis,
        related=related,
        recent=recent,
    )


def window_around(first: datetime, last: datetime, pad: timedelta = timedelta(hours=2)) -> tuple[datetime, datetime]:
    """The time window of a finding's timeline: the finding padded on both sides (UTC)."""
    return (first - pad).astimezone(UTC), (last + pad).astimezone(UTC)
