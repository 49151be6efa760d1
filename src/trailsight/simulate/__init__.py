"""A synthetic organisation with injected attacks: CloudTrail for demos, tests and benchmarks.

:func:`simulate` writes weeks of CloudTrail for a believable two-account
organisation in the S3 layout CloudTrail delivers, plus ``.trailsight/labels.json`` (hidden, so
that ingesting the folder reads CloudTrail only) naming every injected attack and benign surprise
with its event ids;
:func:`simulate_scale` writes N events fast for scale benchmarks. Nothing here
imports detection: the simulator is an honest outside source.
"""

from trailsight.simulate.generate import DEFAULT_START, LABELS_FILE, SimulationResult, parse_attacks, simulate
from trailsight.simulate.scale import ScaleResult, simulate_scale
from trailsight.simulate.scenarios import ATTACK_NAMES, BENIGN_NAMES

__all__ = [
    "ATTACK_NAMES",
    "BENIGN_NAMES",
    "DEFAULT_START",
    "LABELS_FILE",
    "ScaleResult",
    "SimulationResult",
    "parse_attacks",
    "simulate",
    "simulate_scale",
]
