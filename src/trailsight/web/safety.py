"""The text-safety rule (:func:`trailsight.text.visible`) in the web UI's templates.

:func:`finalize` is the Jinja environment's ``finalize``: every value a template writes with
``{{ … }}`` passes through it, so no template can forget it — an invisible or direction-changing
character in a CloudTrail value reaches the page as a visible escape (``\\u202e``). Markup the
app built itself (``soft_breaks``) keeps its tags: those contain no such characters, and the text
between them is escaped the same way. :func:`visible_data` does the same to the strings inside
the JSON data the charts draw (filter ``visible_data``, used before ``tojson``).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from trailsight.text import visible

__all__ = ["finalize", "visible_data"]


def finalize(value: Any) -> Any:
    """A template value as it is written: strings made :func:`~trailsight.text.visible`, else as is."""
    if isinstance(value, Markup):
        # The app's own markup: its tags hold no invisible characters, and the escapes added to the
        # (already HTML-escaped) text between them are plain ASCII without < > & or quotes.
        return Markup(visible(str(value)))  # noqa: S704
    if isinstance(value, str):
        return visible(value)
    return value


def visible_data(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with every string made visible."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {visible_data(k): visible_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible_data(v) for v in value]
    return value
