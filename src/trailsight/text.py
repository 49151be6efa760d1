"""One rule for showing attacker-controlled text to people: nothing invisible, nothing that turns.

CloudTrail fields (user agents, API names, session names, error messages, request values) are
written by whoever made the call. A right-to-left override (U+202E) makes ``invoice\\u202egnp.exe``
read as ``invoiceexe.png``; a zero-width space makes two different names look the same; a raw
ESC starts a terminal escape sequence. :func:`visible` turns every such character into a visible
escape, so people see what the record holds:

* C0 controls (U+0000–U+001F) and DEL, C1 controls (U+0080–U+009F): ``\\t``, ``\\n``, ``\\r``,
  else ``\\xNN`` (``\\x1b`` for ESC);
* bidirectional controls: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069;
* zero-width and other invisible characters: U+00AD, U+034F, U+115F, U+1160, U+17B4, U+17B5,
  U+180B–U+180F, U+200B–U+200D, U+2060–U+2064, U+206A–U+206F, U+3164, U+FE00–U+FE0F, U+FEFF,
  U+FFA0, U+FFF9–U+FFFB, U+E0000–U+E007F (tags); U+2028 and U+2029 (line and paragraph separators);

each as ``\\xNN`` below U+0100, ``\\uNNNN`` up to U+FFFF and ``\\UNNNNNNNN`` above. Everything
else — letters of any script, emoji, backslashes — is left as it is (so a literal ``\\u202e``
typed into a field reads the same as the escaped character: the point is that nothing is hidden
or reordered).

Every human-facing output uses it: the web UI (every value a template writes, and chart labels),
the CLI tables (:func:`trailsight.findings.render.safe`), the CSV export, and chat sinks (Slack,
Teams) that put record values into messages. Machine formats (JSON lines, OCSF, ASFF) keep the
values exact; their readers decide how to show them. In HTML, values should also be isolated
from the page's own words (``<bdi>`` or ``dir="auto"``), so that right-to-left letters in a value
cannot reorder the text around it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["INVISIBLE", "visible"]

INVISIBLE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f]"
)
"""The characters :func:`visible` escapes."""

_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: object) -> str:
    """``value`` as text with every control, bidirectional-control and invisible character escaped.

    ``None`` is the empty string; anything else is ``str(value)``. The result never contains a
    character of :data:`INVISIBLE`, and text without them is returned unchanged::

        >>> visible("invoice\\u202egnp.exe")
        'invoice\\\\u202egnp.exe'
        >>> visible("\\x1b[31mred")
        '\\\\x1b[31mred'
        >>> visible("Zoë → 東京")
        'Zoë → 東京'
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if INVISIBLE.search(text) is None:
        return text
    return INVISIBLE.sub(_escape, text)
