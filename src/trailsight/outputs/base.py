"""The alert, the sink contract and the dead-letter file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from trailsight.errors import ConfigError

ALERT_TYPE = "trailsight.finding"


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One finding raised by a watch run: new, or an update that extends an open finding."""

    finding_id: str
    action: str  # "new" | "update"
    event_count: int
    previous_count: int
    run_id: str
    raised_at: datetime
    finding: Mapping[str, Any]  # Finding.to_dict()
    supersedes: tuple[str, ...] = ()  # earlier finding ids this one replaces (late events moved its start)

    @property
    def alert_key(self) -> str:
        """Idempotency key: the same finding at the same size is the same alert."""
        return f"{self.finding_id}:{self.event_count}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form sent to every sink."""
        return {
            "type": ALERT_TYPE,
            "action": self.action,
            "alert_key": self.alert_key,
            "finding_id": self.finding_id,
            "event_count": self.event_count,
            "previous_count": self.previous_count,
            "run_id": self.run_id,
            "raised_at": _iso(self.raised_at),
            "supersedes": list(self.supersedes),
            "finding": dict(self.finding),
        }

    def to_json(self) -> bytes:
        """Return :meth:`to_dict` as compact UTF-8 JSON (no trailing newline)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output (used by the watch outbox)."""
        return cls(
            finding_id=str(data["finding_id"]),
            action=str(data["action"]),
            event_count=int(data["event_count"]),
            previous_count=int(data["previous_count"]),
            run_id=str(data["run_id"]),
            raised_at=datetime.fromisoformat(str(data["raised_at"]).replace("Z", "+00:00")),
            finding=dict(data["finding"]),
            supersedes=tuple(str(x) for x in data.get("supersedes", ())),
        )


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """What a sink did with a batch of alerts."""

    delivered: list[Alert] = field(default_factory=list)
    failed: list[tuple[Alert, str]] = field(default_factory=list)  # (alert, last error)
    attempts: int = 0


class Sink(Protocol):
    """Something that takes alerts. ``send`` never raises for a delivery failure."""

    name: str

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Deliver ``alerts`` in order; report which got through and which did not."""
        ...

    def close(self) -> None:
        """Release files or connections."""
        ...


class DeadLetterFile:
    """JSON lines of alerts that could not be delivered, with the reason and the time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, failed: Sequence[tuple[Alert, str]], *, sink: str, now: datetime | None = None) -> None:
        """Append one line per failed alert and fsync, so a crash right after loses none."""
        if not failed:
            return
        at = now or datetime.now(UTC)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.path.open("ab") as fh:
                for alert, error in failed:
                    line = {"sink": sink, "error": error, "dead_lettered_at": _iso(at), "alert": alert.to_dict()}
                    fh.write(orjson.dumps(line) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the dead-letter file: {exc.strerror}") from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
