"""How findings name things: principals, finding types. The one home of the ARN shorteners.

A principal ARN is named three ways, each for its place, all from here:

* :func:`short_name` — in prose (titles, explanations): ``alice``, ``role deploy``, ``root``;
* :func:`principal_name` — the bare name (OCSF's user name): ``alice``, ``deploy``, ``root``;
* :func:`short_arn` — in tables and the web UI, where the kind matters: ``user/alice``,
  ``role/deploy``, ``role/…/AWSReservedSSO_Admin_0c5c``, ``root``.

Who *acted* is named by :func:`person_name`, everywhere a finding says who (titles, the CLI and
web lists, the exports and chat messages): behind a shared role whose sessions carry the person
(an IAM Identity Center permission set, a stable session name or ``sourceIdentity``, which
:mod:`trailsight.schema` keeps in ``actor``) it leads with the person and names the role without
its hash suffix — ``ava.costa@northwind.io via AWSReservedSSO_DeveloperAccess``; otherwise it is
:func:`short_name` of the principal.

Text that is not an ARN is returned as it is by all three.
"""

from __future__ import annotations

import re

from trailsight.finding import TACTICS

#: IAM Identity Center names a permission set's role ``AWSReservedSSO_<set>_<16 hex digits>``.
_SSO_SUFFIX = re.compile(r"^(AWSReservedSSO_.+)_[0-9a-f]{16}$")


def finding_type_for(tactic: str | None, identity_type: str) -> str:
    """``<Tactic>:<IdentityType>/AnomalousBehavior``; ``Unusual:`` when there is no tactic."""
    ident = identity_type or "Unknown"
    return f"{tactic if tactic in TACTICS else 'Unusual'}:{ident}/AnomalousBehavior"


def person_name(principal: str, actor: str | None = None) -> str:
    """Who acted, person first (``ava.costa@… via AWSReservedSSO_DeveloperAccess``); else :func:`short_name`."""
    person = _session_of(principal, actor)
    if person:
        return f"{person} via {role_name(principal)}"
    return short_name(actor or principal)


def role_name(principal: str) -> str:
    """A role ARN's name, an SSO permission set's without its hash suffix: ``AWSReservedSSO_DeveloperAccess``."""
    name = principal.rsplit("/", 1)[-1]
    match = _SSO_SUFFIX.match(name)
    return match.group(1) if match else name


def _session_of(principal: str, actor: str | None) -> str:
    if actor and actor != principal and actor.startswith(principal + "/"):
        return actor[len(principal) + 1 :]
    return ""


def short_name(principal: str) -> str:
    """The readable name of a principal ARN: ``alice``, ``role deploy``, ``root``; an SSO permission
    set's role without its hash suffix (``role AWSReservedSSO_Admin``)."""
    if principal.endswith(":root"):
        return "root"
    if ":assumed-role/" in principal or ":role/" in principal:
        return "role " + role_name(principal)
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

    With ``actor`` under the ARN (``<role ARN>/<session name>``), :func:`person_name` (the person
    via the role). None gives ``''``; other text is returned unchanged.
    """
    text = "" if value is None else str(value)
    if _session_of(text, actor):
        return person_name(text, actor)
    if text.startswith("arn:"):
        parts = text.split(":", 5)
        if len(parts) == 6:
            segments = parts[5].split("/")
            if len(segments) > 2:  # role/aws-reserved/sso.amazonaws.com/NAME -> role/…/NAME
                return f"{segments[0]}/…/{segments[-1]}"
            return parts[5]
    return text


__all__ = ["finding_type_for", "person_name", "principal_name", "role_name", "short_arn", "short_name"]
