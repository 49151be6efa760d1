"""Skip the Spark tests where Spark cannot run, unless ``TRAILSIGHT_REQUIRE_SPARK=1`` says they must.

CI sets the variable (.ci/run), so a missing pyspark, Java or test data fails the run there
instead of letting it pass without the Spark tests.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

REQUIRE_ENV = "TRAILSIGHT_REQUIRE_SPARK"


def required() -> bool:
    """True when the Spark tests must run (``TRAILSIGHT_REQUIRE_SPARK=1``)."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip (the module or test) for ``reason``; fail instead when the Spark tests are required."""
    if required():
        pytest.fail(f"{reason}, but {REQUIRE_ENV}=1 requires the Spark tests to run", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_spark() -> None:
    """Skip or fail unless pyspark imports and ``java`` is on PATH."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        skip_or_fail("pyspark is not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None:
        skip_or_fail("Spark needs Java 17 (java not on PATH)")
