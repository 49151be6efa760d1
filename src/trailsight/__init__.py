"""trailsight: learn how every AWS principal usually behaves in CloudTrail; explain what it doesn't usually do."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
