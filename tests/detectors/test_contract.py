"""The contract every registered detector keeps (one suite, run for each)."""

from __future__ import annotations

import copy
import importlib
import inspect

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from trailsight.config import Settings
from trailsight.detectors import registry
from trailsight.detectors.base import Detector
from trailsight.errors import DetectorError

DETECTORS = sorted(registry.available())


@pytest.fixture(params=DETECTORS)
def detector(request: pytest.FixtureRequest) -> Detector:
    return registry.get(request.param)()


def test_the_seed_detectors_are_registered() -> None:
    assert len(registry.SEEDS) == 9
    assert set(DETECTORS) >= set(registry.SEEDS)


def test_scores_in_range_and_reasons_only_when_fired(detector: Detector, scenario_features: pa.Table) -> None:
    out = detector.score(scenario_features)
    assert len(out) == scenario_features.num_rows
    assert out.event_ids == scenario_features["event_id"].to_pylist()
    assert np.all((out.score >= 0.0) & (out.score <= 1.0))
    assert np.all((out.anomaly >= 0) & (out.anomaly <= 100))
    assert np.array_equal(out.fired, out.anomaly >= detector.threshold)
    for fired, reasons in zip(out.fired, out.reasons, strict=True):
        assert bool(reasons) == bool(fired)
        assert all(r.detector == detector.name and 0.0 <= r.score <= 1.0 and r.message for r in reasons)


def test_scoring_changes_no_state_and_is_deterministic(detector: Detector, scenario_features: pa.Table) -> None:
    before = copy.deepcopy(vars(detector))
    first = detector.score(scenario_features)
    second = detector.score(scenario_features)
    assert vars(detector) == before
    assert np.array_equal(first.score, second.score)
    assert first.reasons == second.reasons


def test_pieces_equal_the_whole(detector: Detector, scenario_features: pa.Table) -> None:
    whole = detector.score(scenario_features)
    cut = scenario_features.num_rows // 3
    parts = [detector.score(scenario_features.slice(0, cut)), detector.score(scenario_features.slice(cut))]
    assert np.array_equal(np.concatenate([p.score for p in parts]), whole.score)
    assert [r for p in parts for r in p.reasons] == whole.reasons


def test_unseen_principals_are_handled(detector: Detector, scenario_features: pa.Table) -> None:
    fresh = scenario_features.filter(pc.equal(scenario_features["p_n"], 0))
    assert fresh.num_rows > 0
    out = detector.score(fresh)
    assert np.all((out.score >= 0.0) & (out.score <= 1.0))
    assert detector.score(scenario_features.slice(0, 0)).score.shape == (0,)


def test_missing_columns_and_bad_params_are_detector_errors(detector: Detector, scenario_features: pa.Table) -> None:
    if detector.requires:
        with pytest.raises(DetectorError, match=detector.name):
            detector.score(scenario_features.drop_columns([detector.requires[0]]))
    with pytest.raises(DetectorError, match="unknown parameter"):
        type(detector)(no_such_param=1)
    with pytest.raises(DetectorError, match="threshold"):
        type(detector)(threshold="high")


def test_each_detector_explains_its_algorithm(detector: Detector) -> None:
    module = importlib.import_module(type(detector).__module__)
    assert module.__doc__
    assert "Algorithm" in module.__doc__
    assert "Source" in module.__doc__
    assert inspect.getdoc(type(detector))
    assert detector.version
    assert detector.source


def test_thresholds_come_from_settings() -> None:
    settings = Settings(data={"detectors": {"off_hours": {"threshold": 80}, "volume_spike": {"enabled": False}}})
    made = {d.name: d for d in registry.create(None, settings)}
    assert made["off_hours"].threshold == 80
    assert "volume_spike" not in made
    with pytest.raises(DetectorError, match=r"\[detectors.off_hours\]"):
        registry.create(["off_hours"], Settings(data={"detectors": {"off_hours": {"bogus": 1}}}))


def test_unknown_and_duplicate_names_are_rejected() -> None:
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        registry.get("nope")

    class Clash(registry.BUILTIN["off_hours"]):  # type: ignore[misc]
        """Same name, another class."""

    reg = dict(registry.BUILTIN)
    with pytest.raises(DetectorError, match="registered twice"):
        registry.register(reg, Clash)


def test_kind_is_what_or_context(detector: Detector) -> None:
    assert detector.kind in ("what", "context")
