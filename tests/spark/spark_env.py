"""Helpers of the Spark tests: skip-or-fail, and the stores they score.

The Spark tests skip where Spark cannot run, unless ``TRAILSIGHT_REQUIRE_SPARK=1`` says they
must: CI sets the variable (.ci/run), so a missing pyspark, Java or test data fails the run
there instead of letting it pass without the Spark tests.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path
from typing import NoReturn

import pytest

from trailsight.ingest import ingest
from trailsight.simulate.generate import simulate
from trailsight.store.layout import StoreLayout

REQUIRE_ENV = "TRAILSIGHT_REQUIRE_SPARK"
INVICTUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "invictus-ir_aws_dataset" / "CloudTrail"


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


def build_store(root: Path, *, sim_days: int = 0) -> StoreLayout:
    """A store of the real invictus-ir detonation (2023-07-10, 2,900 events) in ``root/store``.

    With ``sim_days``, the days before it hold a small simulated organisation (six principals,
    seed 3, its own attacks), so the detonation is scored against some history.
    """
    if not INVICTUS.is_dir():
        skip_or_fail(f"real captures not found at {INVICTUS}")
    sources = [INVICTUS]
    if sim_days:
        simulate(root / "sim", days=sim_days, principals=6, seed=3, start=date(2023, 7, 10 - sim_days))
        sources.insert(0, root / "sim" / "AWSLogs")
    layout = StoreLayout(root / "store")
    summary = ingest(sources, layout, None, workers=0)
    assert summary.quarantined == 0
    return layout
