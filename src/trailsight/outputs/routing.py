"""Sinks around sinks: a severity floor per sink, and several sinks fed from one outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trailsight.errors import ConfigError
from trailsight.outputs.base import Alert, Delivery, Sink

#: Severity labels from least to most severe.
SEVERITY_ORDER: tuple[str, ...] = ("Informational", "Low", "Medium", "High", "Critical")


def severity_rank(label: str, *, setting: str = "min_severity") -> int:
    """The rank of a severity label (case-insensitive); unknown labels are a ConfigError."""
    for rank, known in enumerate(SEVERITY_ORDER):
        if known.lower() == label.strip().lower():
            return rank
    raise ConfigError(f"{setting} {label!r}: expected one of {', '.join(SEVERITY_ORDER)}")


def alert_rank(finding: Mapping[str, Any]) -> int:
    """The severity rank of a finding dict: its label, else its GuardDuty-band number."""
    label = str(finding.get("severity_label") or "")
    for rank, known in enumerate(SEVERITY_ORDER):
        if known == label:
            return rank
    try:
        value = float(finding.get("severity") or 0.0)
    except (TypeError, ValueError):
        return 0
    return 4 if value >= 9 else 3 if value >= 7 else 2 if value >= 4 else 1 if value >= 1 else 0


class SeverityFloorSink:
    """Pass only alerts at or above ``min_severity`` to ``inner``; the others count as delivered.

    An alert below the floor is not an error: this sink was never meant to get it, so it
    leaves the outbox like a delivered one (other sinks still get it).
    """

    def __init__(self, inner: Sink, min_severity: str) -> None:
        self.inner = inner
        self.min_severity = min_severity
        self.floor = severity_rank(min_severity)
        self.name = inner.name

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Send the alerts at or above the floor; report the rest as delivered."""
        keep = [a for a in alerts if alert_rank(a.finding) >= self.floor]
        skipped = [a for a in alerts if alert_rank(a.finding) < self.floor]
        if not keep:
            return Delivery(delivered=list(skipped))
        result = self.inner.send(keep)
        return Delivery(delivered=[*result.delivered, *skipped], failed=result.failed, attempts=result.attempts)

    def close(self) -> None:
        """Close the inner sink."""
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # the file sink's exactly-once hooks (prepare / reconcile) pass through the floor
        if name in ("prepare", "reconcile"):
            return getattr(self.inner, name)
        raise AttributeError(name)


class FanOutSink:
    """Every alert to each of ``sinks``; an alert is delivered when every sink took it.

    ``watch`` feeds the sinks one by one (:attr:`sinks`) so each sink's failures are
    dead-lettered under its own name; :meth:`send` does the same for other callers, prefixing
    each error with the sink's name.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        if not sinks:
            raise ConfigError("--output: at least one output is needed")
        self.sinks = list(sinks)
        self.name = "+".join(s.name for s in self.sinks)

    def send(self, alerts: Sequence[Alert]) -> Delivery:
        """Send to each sink in turn; merge what they did."""
        failed: list[tuple[Alert, str]] = []
        bad: set[str] = set()
        attempts = 0
        for sink in self.sinks:
            result = sink.send(alerts)
            attempts += result.attempts
            failed.extend((a, f"{sink.name}: {error}") for a, error in result.failed)
            bad.update(a.alert_key for a, _ in result.failed)
        return Delivery(delivered=[a for a in alerts if a.alert_key not in bad], failed=failed, attempts=attempts)

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()


__all__ = ["SEVERITY_ORDER", "FanOutSink", "SeverityFloorSink", "alert_rank", "severity_rank"]
