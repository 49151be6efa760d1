"""The public API: what ``trailsight`` exports, in the style of httpx's exported-members test.

Adding or removing a public name is a decision: it changes this list on purpose.
"""

from __future__ import annotations

import inspect

import pytest

import trailsight

_NAMES = (
    "ConfigError Detector DetectorScores FeatureEngine FeaturePlan Finding LocalEngine OpenRange Reason RunStats"
    " Settings SparkEngine StoreError TrailsightError UnusualEvent __version__ detect"
)
PUBLIC = frozenset(_NAMES.split())


def test_all_lists_the_public_api() -> None:
    assert set(trailsight.__all__) == PUBLIC
    assert len(trailsight.__all__) == len(PUBLIC)


def test_dir_shows_the_public_api() -> None:
    assert dir(trailsight) == sorted(PUBLIC)


def test_exports_and_all_agree() -> None:
    assert sorted([*trailsight._EXPORTS, "__version__"]) == sorted(trailsight.__all__)


@pytest.mark.parametrize("name", sorted(PUBLIC - {"__version__"}))
def test_every_member_resolves_to_its_home(name: str) -> None:
    member = getattr(trailsight, name)
    assert member.__name__ == name
    assert member.__module__.startswith("trailsight.")
    assert member.__doc__, f"{name} has no docstring"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = trailsight.nothing  # type: ignore[attr-defined]


def test_the_engines_implement_the_protocol() -> None:
    assert isinstance(trailsight.LocalEngine(), trailsight.FeatureEngine)
    assert isinstance(trailsight.SparkEngine(), trailsight.FeatureEngine)


def test_detect_takes_an_engine() -> None:
    assert "engine" in inspect.signature(trailsight.detect).parameters
