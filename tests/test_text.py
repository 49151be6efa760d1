"""The text-safety rule: invisible and direction-changing characters become visible escapes."""

from __future__ import annotations

import csv
import doctest
import io
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import trailsight.text
from trailsight.findings.render import safe
from trailsight.text import INVISIBLE, visible

sys.path.insert(0, str(Path(__file__).parent / "findings"))

CASES = {
    "invoice\u202egnp.exe": "invoice\\u202egnp.exe",  # right-to-left override
    "Get\u202etcejbO": "Get\\u202etcejbO",
    "a\u2066b\u2069c\u200ed\u200ff\u061c": "a\\u2066b\\u2069c\\u200ed\\u200ff\\u061c",  # isolates, marks
    "ali\u200bce\u200d\ufeff\u2060": "ali\\u200bce\\u200d\\ufeff\\u2060",  # zero-width
    "\x1b[31mred\x07": "\\x1b[31mred\\x07",  # ESC, BEL
    "tab\tnew\nline\rx\x00": "tab\\tnew\\nline\\rx\\x00",
    "c1\x85\x9b": "c1\\x85\\x9b",  # NEL, CSI
    "line\u2028para\u2029": "line\\u2028para\\u2029",
    "tag\U000e0041": "tag\\U000e0041",
    "soft\u00adhyphen": "soft\\xadhyphen",
}


@pytest.mark.parametrize(("raw", "shown"), CASES.items())
def test_visible_escapes_each_kind(raw: str, shown: str) -> None:
    assert visible(raw) == shown


@pytest.mark.parametrize("plain", ["GetObject", "Zoë → 東京", "مرحبا", "emoji 🙂", "back\\slash", ""])
def test_visible_keeps_other_text(plain: str) -> None:
    assert visible(plain) == plain


def test_visible_of_none_and_non_text() -> None:
    assert visible(None) == ""
    assert visible(42) == "42"


@given(st.text())
def test_visible_leaves_nothing_invisible_and_is_stable(text: str) -> None:
    shown = visible(text)
    assert INVISIBLE.search(shown) is None
    assert visible(shown) == shown
    if INVISIBLE.search(text) is None:
        assert shown == text


def test_docstring_examples() -> None:
    result = doctest.testmod(trailsight.text)
    assert result.attempted >= 3
    assert result.failed == 0


def test_cli_tables_use_the_rule() -> None:
    assert safe("invoice\u202egnp.exe") == "invoice\\u202egnp.exe"
    assert safe("\x1b]0;title\x07") == "\\x1b]0;title\\x07"


def test_csv_shows_escapes_and_no_raw_escape() -> None:
    from test_export_formats import hostile_finding

    from trailsight.findings.export_csv import write_csv

    out = io.StringIO(newline="")
    write_csv([hostile_finding("invoice\u202egnp.exe\x1b[2J")], out)
    text = out.getvalue()
    assert "\x1b" not in text
    assert "\u202e" not in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows[0]["user_agents"] == "invoice\\u202egnp.exe\\x1b[2J"
