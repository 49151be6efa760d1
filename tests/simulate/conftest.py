"""Shared small simulations (kept small so the simulate tests stay fast)."""

from __future__ import annotations

import pytest
from sim_helpers import SMALL

from trailsight.simulate import SimulationResult, simulate


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """A six-day organisation with every attack and benign surprise."""
    return simulate(tmp_path_factory.mktemp("sim-small"), **SMALL)  # type: ignore[arg-type]
