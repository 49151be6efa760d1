"""Golden digests: the exact bytes a fixed seed gives, and the organisation it builds.

``test_simulate.py`` checks that one seed gives the same bytes twice within one version of the
code; these tests check that the code still gives the bytes it gave before, so a refactoring
that changes any record, label, workload or the order of the seeded random draws fails here.
When a change to the output is intended, print the new digests with the helpers below and
update the constants in the same commit (and say why in its message).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random

from trailsight.simulate import SimulationResult
from trailsight.simulate.organisation import build_organisation

#: sha256 over ``<path under AWSLogs> <sha256 of the file>`` lines and the labels' sha256 (SMALL).
SMALL_SIM_DIGEST = "f0e1cbeea52af5ae535496ea2691d3b0c5ecae89398bef04bfc752f50f3fba90"
#: sha256 of the organisation ``build_organisation(random.Random(7), 60)`` (every workload of the roster).
ORGANISATION_DIGEST = "c8d054d6b3582be2d0a0eca165b342b1c06733d7da64e4fd31342766be375c81"


def simulation_digest(result: SimulationResult) -> str:
    """One digest of a simulation's trail files and labels (wherever the labels are written)."""
    root = result.out / "AWSLogs"
    lines = [
        f"{p.relative_to(root).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]
    lines.append(f"labels {hashlib.sha256(result.labels_path.read_bytes()).hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def organisation_digest(seed: int, principals: int) -> str:
    """One digest of the organisation a seed builds (accounts, people, workloads, in order)."""
    org = build_organisation(random.Random(seed), principals)
    return hashlib.sha256(repr(dataclasses.asdict(org)).encode()).hexdigest()


def test_small_simulation_bytes_unchanged(small_sim: SimulationResult) -> None:
    assert simulation_digest(small_sim) == SMALL_SIM_DIGEST


def test_organisation_unchanged() -> None:
    org = build_organisation(random.Random(7), 60)
    assert len(org.workloads) == 15  # the whole roster
    assert organisation_digest(7, 60) == ORGANISATION_DIGEST
