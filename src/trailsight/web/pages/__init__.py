"""The web UI's pages, one router each: findings (list, detail, triage), principals and roles, pivots."""

from __future__ import annotations

from trailsight.web.pages import findings, pivots, principals

ROUTERS = (findings.router, principals.router, pivots.router)

__all__ = ["ROUTERS"]
