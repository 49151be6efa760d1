"""One ingest per store, and ingest workers that cannot outlive their run.

:class:`StoreLock` is an exclusive ``flock`` on ``S/.ingest.lock``. The kernel drops a flock
when the last descriptor of its open file goes away, so a holder that dies — even by SIGKILL —
frees the store at once. Forked children get a copy of every descriptor, though, and a child
that kept its copy would keep the store locked after its parent died; so:

* :func:`detach_child` is the first thing a forked ingest worker does: it closes the copies of
  the held lock (closing a copy does not release the parent's lock) and ties the worker's life
  to its parent — a parent-death signal on Linux (``prctl(PR_SET_PDEATHSIG)``) and, everywhere,
  a watchdog thread that ends the worker when its parent pid changes;
* when the lock is busy the error names the processes that hold it, from the pid written into
  the lock file and the open descriptors Linux lists under ``/proc``, and says when the writer
  that took it has already exited (its leftover children still hold the lock).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Final

from trailsight.errors import IngestError

_HELD: set[int] = set()  # descriptors of the locks this process holds (closed in forked workers)
_PR_SET_PDEATHSIG: Final = 1
WATCHDOG_SECONDS: Final = 0.5


class StoreLock:
    """An exclusive lock on ``root/.ingest.lock``: one ingest per store at a time."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".ingest.lock"
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("r+b") if self.path.exists() else self.path.open("w+b")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise IngestError(f"{self.path.parent}: {busy_reason(self.path)}; try again later") from None
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n".encode())
        fh.flush()
        self._fh = fh
        _HELD.add(fh.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            _HELD.discard(self._fh.fileno())
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def busy_reason(path: Path) -> str:
    """Why the lock at ``path`` is busy, naming the pids concerned."""
    try:
        writer = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        writer = None
    holders = sorted(_holders(path))
    if writer is not None and not _alive(writer):
        left = f" (still held by pid {', '.join(map(str, holders))})" if holders else ""
        return (
            f"the ingest that locked this store (pid {writer}) has exited, but processes it started "
            f"still hold {path.name}{left}; stop them to free the store"
        )
    who = f"pid {writer}" if writer is not None else "another process"
    return f"another ingest ({who}) is writing to this store"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holders(path: Path) -> set[int]:
    """Pids with ``path`` open (Linux: from ``/proc/*/fd``; elsewhere none are found)."""
    try:
        target = path.stat()
    except OSError:
        return set()
    found: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"{entry.path}/fd"):
                with contextlib.suppress(OSError):
                    st = fd.stat()
                    if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                        found.add(int(entry.name))
                        break
    return found


def detach_child(parent: int) -> None:
    """In a forked worker: drop the inherited lock descriptors and end with ``parent``.

    ``parent`` is the pid the worker was started by; when the worker's parent is no longer that
    process (it died and the worker was re-parented), the worker exits at once.
    """
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # died before the signal was asked for
        os._exit(1)
    thread = threading.Thread(target=_watch_parent, args=(parent,), name="trailsight-parent-watch", daemon=True)
    thread.start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)


__all__ = ["StoreLock", "busy_reason", "detach_child"]
