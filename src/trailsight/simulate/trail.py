"""The growing trail: every simulated record with its time, in creation order."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from trailsight.simulate.records import Identity, build_record, error_for


@dataclass
class Trail:
    """Collects records; ``emit`` builds one and returns it (its ``eventID`` goes into labels)."""

    rng: random.Random
    start: float
    end: float
    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def emit(
        self,
        identity: Identity,
        ts: float,
        service: str,
        name: str,
        region: str,
        ip: str,
        ua: str,
        *,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        error: str | None = None,
        resource: str = "*",
        console: bool = False,
        event_type: str = "AwsApiCall",
        resources: list[dict[str, str]] | None = None,
        additional: dict[str, Any] | None = None,
        read_only: bool | None = None,
        shared_event_id: str | None = None,
        recipient: str | None = None,
    ) -> dict[str, Any] | None:
        """Record one call at ``ts`` (dropped, returning None, outside the simulated period)."""
        if not self.start <= ts < self.end:
            return None
        err = error_for(self.rng, error, service, name, identity.arn, resource) if error else None
        rec = build_record(
            rng=self.rng,
            identity=identity,
            ts=ts,
            service=service,
            event_name=name,
            region=region,
            source_ip=ip,
            user_agent=ua,
            request=request,
            response=response,
            error=err,
            console=console,
            event_type=event_type,
            resources=resources,
            additional=additional,
            read_only=read_only,
            shared_event_id=shared_event_id,
            recipient=recipient,
        )
        self.records.append((ts, rec))
        return rec
