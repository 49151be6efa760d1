"""A run's process keeps freed memory for reuse: glibc's heap and a jemalloc Arrow pool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FLAWS2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "flaws2_cloud" / "AWSLogs"

MALLOC_PROBE = """
import resource, sys
from trailsight import allocation
if sys.argv[1] == "keep":
    allocation.keep_freed_memory()
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(64 << 20)  # zero-filled: every page is touched
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""

ARROW_PROBE = """
import sys
import pyarrow as pa
from trailsight.cli.main import main
main(sys.argv[1:])
pool = pa.default_memory_pool()
values = pa.array(range(1 << 20)).take(pa.array([0, 5]))  # allocates from the default pool
print(pool.backend_name, values.to_pylist())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tunables")
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", MALLOC_PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    default, kept = faults("default"), faults("keep")
    pages = (64 << 20) // 4096
    assert default >= 2 * pages  # each 64 MiB block is a fresh mmap: its pages fault in again
    assert kept < pages // 4  # the heap keeps the block: allocating it again faults (almost) nothing


def _arrow_pool_after_a_command(tmp_path: Path, env: dict[str, str]) -> list[str]:
    args = ["ingest", str(FLAWS2), "--store", str(tmp_path / "store"), "--workers", "0"]
    done = subprocess.run(
        [sys.executable, "-c", ARROW_PROBE, *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.splitlines()[-1].split(maxsplit=1)


def test_a_command_allocates_arrow_memory_from_jemalloc_unless_the_user_chose_a_pool(tmp_path: Path) -> None:
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow has no jemalloc")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _arrow_pool_after_a_command(tmp_path / "a", env) == ["jemalloc", "[0, 5]"]
    chosen = _arrow_pool_after_a_command(tmp_path / "b", {**env, "ARROW_DEFAULT_MEMORY_POOL": "system"})
    assert chosen == ["system", "[0, 5]"]
