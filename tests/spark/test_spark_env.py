"""TRAILSIGHT_REQUIRE_SPARK=1 turns the Spark tests' skips into failures."""

from __future__ import annotations

import pytest
from spark_env import REQUIRE_ENV, require_spark, skip_or_fail


def test_skips_when_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no java"):
        skip_or_fail("no java")
    monkeypatch.setenv(REQUIRE_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("no java")


def test_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"no java, but {REQUIRE_ENV}=1 requires"):
        skip_or_fail("no java")


def test_missing_java_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(pytest.fail.Exception, match="java not on PATH"):
        require_spark()
    monkeypatch.delenv(REQUIRE_ENV)
    with pytest.raises(pytest.skip.Exception, match="java not on PATH"):
        require_spark()
