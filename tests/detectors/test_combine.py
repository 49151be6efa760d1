"""The combiner takes any set of detector scores: API risk weighting, what x context, gating."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from trailsight.detectors.base import Columns, Detector, FloatArray
from trailsight.finding import Reason
from trailsight.scoring import ScoringOptions, combine


class ConstantDetector(Detector):
    """A third-party-style detector: scores every row with column ``s``."""

    name: ClassVar[str] = "constant"
    kind: ClassVar[str] = "what"
    source: ClassVar[str] = "test"
    requires: ClassVar[tuple[str, ...]] = ("s",)

    def _score(self, cols: Columns) -> tuple[FloatArray, Any]:
        def explain(i: int, s: float) -> list[Reason]:
            return [Reason(detector=self.name, code="constant", score=s, message="constant")]

        return cols.num("s"), explain


def table(**cols: list[Any]) -> pa.Table:
    n = len(next(iter(cols.values())))
    base: dict[str, list[Any]] = {"event_id": [f"e{i}" for i in range(n)]}
    return pa.table({**base, **cols})


def test_risk_scales_the_event_score() -> None:
    t = table(s=[1.0, 1.0, 1.0], api_risk=[0.0, 1.0, None])
    out = combine(t, [ConstantDetector().score(t)], ScoringOptions())
    assert np.allclose(out.score, [0.35, 1.0, 0.35 + 0.65 * 0.3])
    assert out.unusual.tolist() == [True, True, True]
    assert out.reasons(1)[0].detector == "constant"


def test_unfired_detectors_do_not_count_and_weights_apply() -> None:
    t = table(s=[0.4, 0.9], api_risk=[1.0, 1.0])
    out = combine(t, [ConstantDetector().score(t)], ScoringOptions(weights={"constant": 0.5}))
    assert out.score[0] == 0.0  # 40 < threshold 50: not fired
    assert np.isclose(out.score[1], 0.45)
    assert out.what[1] > 0
    assert out.context[1] == 0


def test_gated_events_are_unusual_only_on_risky_apis() -> None:
    t = table(s=[1.0, 1.0], api_risk=[0.2, 0.9], gated_account=[True, True], gated_principal=[False, False])
    out = combine(t, [ConstantDetector().score(t)], ScoringOptions())
    assert out.gated.tolist() == [True, True]
    assert out.unusual.tolist() == [False, True]
