"""Ingest workers keep freed memory for reuse (glibc): a large buffer allocated again costs no new page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from trailsight.ingest import pipeline
if sys.argv[1] == "keep":
    pipeline._keep_freed_memory()
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(64 << 20)  # zero-filled: every page is touched
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tunables")
def test_workers_reuse_freed_memory_instead_of_faulting_it_in_again() -> None:
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    default, kept = faults("default"), faults("keep")
    pages = (64 << 20) // 4096
    assert default >= 2 * pages  # each 64 MiB block is a fresh mmap: its pages fault in again
    assert kept < pages // 4  # the heap keeps the block: allocating it again faults (almost) nothing
