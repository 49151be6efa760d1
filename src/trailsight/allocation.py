"""Let this process's memory allocators keep freed memory for reuse instead of returning it at once.

A run allocates and frees buffers of the same large sizes over and over: a file's text, a
chunk's columns, the numpy arrays of a day's features, the Arrow tables DuckDB hands back. When
an allocator gives freed memory straight back to the system, the next buffer is fresh memory,
and the kernel faults in and zeroes every page of it again: on a large detect or ingest, page
faults and system time become a sizeable share of the CPU time (docs/scaling.md has the figures).

* :func:`keep_freed_memory` raises glibc's trim and mmap thresholds (numpy and Python allocate
  with malloc), so blocks up to :data:`MALLOC_KEEP_BYTES` stay in the heap.
* :func:`retain_arrow_memory` makes jemalloc pyarrow's default pool (pyarrow's wheels default
  to mimalloc, which purges freed pages almost at once) and lets it hold freed pages for
  :data:`ARROW_DECAY_MS` before returning them.

Together they trade a little more peak memory for much less system time (docs/scaling.md). The
price in a long-lived process (``watch``): between runs it may keep up to
:data:`MALLOC_KEEP_BYTES` of freed heap per malloc arena rather than hand it back; Arrow's freed
pages still go back, after :data:`ARROW_DECAY_MS`. Both are process-wide and only change when memory
goes back to the system, never what a run computes. The CLI calls :func:`tune` when a command
runs, and worker processes call it when they start. Where glibc or jemalloc is missing (another
libc, another platform, a pyarrow built without jemalloc), or the user chose a pool with
``ARROW_DEFAULT_MEMORY_POOL``, the defaults stay.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

MALLOC_KEEP_BYTES: Final = 256 << 20
"""glibc keeps up to this much freed memory at the top of its heap, and serves blocks up to this
size from the heap rather than from fresh mappings."""

ARROW_DECAY_MS: Final = 10_000
"""jemalloc returns freed pages to the system over this many milliseconds (a run reuses them
meanwhile; a long-lived ``watch`` gives them back between runs)."""

_M_TRIM_THRESHOLD: Final = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD: Final = -3


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks up to :data:`MALLOC_KEEP_BYTES` for reuse.

    Elsewhere than glibc on Linux this does nothing.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_KEEP_BYTES)
        libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_KEEP_BYTES)
    except (OSError, AttributeError):  # not glibc (musl, ...): keep its defaults
        return


def retain_arrow_memory() -> bool:
    """Make jemalloc, holding freed pages for :data:`ARROW_DECAY_MS`, pyarrow's default pool.

    Returns whether it did: not when ``ARROW_DEFAULT_MEMORY_POOL`` names a pool (the user's choice
    wins) or this pyarrow has no jemalloc.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return False
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(ARROW_DECAY_MS)
    except NotImplementedError:  # built without jemalloc (ArrowNotImplementedError is one)
        return False
    pa.set_memory_pool(pool)
    return True


def tune() -> None:
    """Both of the above, for a process about to do a run's work."""
    keep_freed_memory()
    retain_arrow_memory()
