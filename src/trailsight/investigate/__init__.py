"""Pivots for investigations: an IP, an access key, a principal and its role chains, a principal's profile.

The CLI (``trailsight investigate``, ``trailsight profile``) and the web UI's pivot, principal and
role pages run these queries; the web only shapes their results for its templates.

Functions return plain JSON-ready data (the CLI and the web UI show the same thing)::

    from trailsight.investigate import open_lake, ip_pivot, principal_profile

    with open_lake(store) as con:
        data = ip_pivot(con, "198.51.100.7")
"""

from trailsight.investigate.lake import open_lake
from trailsight.investigate.pivots import (
    api_summary,
    ip_pivot,
    key_pivot,
    principal_pivot,
    resolve_identity,
    resolve_principal,
    role_assumers,
    role_chains,
    roles_assumed,
)
from trailsight.investigate.profile import principal_activity, principal_profile

__all__ = [
    "api_summary",
    "ip_pivot",
    "key_pivot",
    "open_lake",
    "principal_activity",
    "principal_pivot",
    "principal_profile",
    "resolve_identity",
    "resolve_principal",
    "role_assumers",
    "role_chains",
    "roles_assumed",
]
