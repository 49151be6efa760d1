"""How findings name things: principals in prose, finding types.

:func:`short_name` is the one ARN shortener of the package: explanations, titles, tables, the
exports and the web UI all name a principal with it.
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


__all__ = ["actor_name", "finding_type_for", "short_name"]
