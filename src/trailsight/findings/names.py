"""How findings name things: principals, finding types. The one home of the ARN shorteners.

A principal ARN is named three ways, each for its place, all from here:

* :func:`short_name` — in prose (titles, explanations): ``alice``, ``role deploy``, ``root``;
* :func:`principal_name` — the bare name (OCSF's user name): ``alice``, ``deploy``, ``root``;
* :func:`short_arn` — in tables and the web UI, where the kind matters: ``user/alice``,
  ``role/deploy``, ``role/…/AWSReservedSSO_Admin_0c5c``, ``root``; an SSO actor's person.

Text that is not an ARN is returned as it is by all three.
"""

from __future__ import annotations

from trailsight.finding import TACTICS


def finding_type_for(tactic: str | None, identity_type: str) -> str:
    """``<Tactic>:<IdentityType>/AnomalousBehavior``; ``Unusual:`` when there is no tactic."""
    ident = identity_type or "Unknown"
    return f"{tactic if tactic in TACTICS else 'Unusual'}:{ident}/AnomalousBehavior"


def actor_name(principal: str, actor: str) -> str:
    """How explanations name who acted: the session's person for SSO-style actors, else the principal."""
    if actor and actor != principal and actor.startswith(principal + "/"):
        return actor[len(principal) + 1 :]
    return short_name(actor or principal)


def short_name(principal: str) -> str:
    """The readable name of a principal ARN: ``alice``, ``role/deploy``, ``root``."""
    if principal.endswith(":root"):
        return "root"
    if ":assumed-role/" in principal or ":role/" in principal:
        return "role " + principal.rsplit("/", 1)[-1]
    if "/" in principal:
        return principal.rsplit("/", 1)[-1]
    return principal


def principal_name(principal: str) -> str:
    """``arn:aws:iam::1:user/ops/alice`` → ``alice``; ``...:root`` → ``root``; services as they are."""
    if principal.endswith(":root"):
        return "root"
    if principal.startswith("arn:"):
        return principal.rsplit("/", 1)[-1] if "/" in principal else principal.rsplit(":", 1)[-1]
    return principal


def short_arn(value: object, actor: str | None = None) -> str:
    """The readable tail of an ARN: ``user/alice``, ``role/Admin``, ``role/…/NAME``, ``root``.

    With ``actor`` under the ARN (``<role ARN>/<session name>``), the session name (the person).
    None gives ``''``; other text is returned unchanged.
    """
    text = "" if value is None else str(value)
    if actor and actor != text and actor.startswith(text + "/"):
        return actor[len(text) + 1 :]
    if text.startswith("arn:"):
        parts = text.split(":", 5)
        if len(parts) == 6:
            segments = parts[5].split("/")
            if len(segments) > 2:  # role/aws-reserved/sso.amazonaws.com/NAME -> role/…/NAME
                return f"{segments[0]}/…/{segments[-1]}"
            return parts[5]
    return text


__all__ = ["actor_name", "finding_type_for", "principal_name", "short_arn", "short_name"]
