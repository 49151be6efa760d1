"""Finding builders shared by the story tests (stories/correlate.py takes findings, not events)."""

from __future__ import annotations

from datetime import datetime, timedelta

from trailsight.finding import ApiCall, Finding, NetworkInfo, Reason


def finding(
    fid: str,
    principal: str,
    t: datetime,
    score: float,
    *,
    actor: str | None = None,
    tactic: str | None = "Discovery",
    keys: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    account: str | None = None,
    event_ids: tuple[str, ...] = (),
    reasons: tuple[Reason, ...] = (),
) -> Finding:
    """A finding of ``principal`` (as ``actor``) at ``t`` for five minutes, with ``score``."""
    ids = list(event_ids) or [f"{fid}-e1", f"{fid}-e2"]
    return Finding(
        id=fid,
        finding_type="Discovery:IAMUser/AnomalousBehavior",
        title=f"{principal.rsplit('/', 1)[-1]}: unusual ListBuckets",
        principal=principal,
        actor=actor or principal,
        account_id=account or principal.split(":")[4],
        identity_type="IAMUser" if ":user/" in principal else "AssumedRole",
        first_seen=t,
        last_seen=t + timedelta(minutes=5),
        count=len(ids),
        score=score,
        risk_score=round(score * 100),
        severity=5.0,
        severity_label="Medium",
        confidence="Medium",
        tactic=tactic,
        tactic_id=None,
        technique=None,
        event_ids=ids,
        reasons=list(reasons),
        access_keys=list(keys),
        networks=[NetworkInfo(ip=ip, ip_kind="public", events=len(ids)) for ip in ips],
        anomalous_apis=[ApiCall(service="s3", event_name="ListBuckets", success=len(ids), failure=0)],
    )
