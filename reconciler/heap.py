"""The C heap of a heavy one-shot command (`validate`, `plan`, `apply`), set up for many
allocations that live until the exit: fewer page faults and no mapping churn.

glibc's defaults suit long-lived processes that give memory back. Taken at the start of
the command, and inherited by its forked children (spec.parallel, engine.apply):

- `M_MMAP_THRESHOLD` at its maximum (32 MiB on 64-bit): blocks from 128 KiB up come from
  the heap and are reused, not mapped and unmapped each time (each job file read
  allocated 1 MiB and shrank it: an mmap, an mremap, a munmap and fresh pages per file).
- `M_TRIM_THRESHOLD` at its maximum: the heap is never given back to be faulted in again.
- `M_ARENA_MAX` 1: threads allocate from the main heap, whose free space is reused,
  rather than fault in an arena of their own.

A cold apply of 100,000 jobs: ~795,000 minor page faults instead of ~830,000, 10,000
jobs: 112,000 instead of 121,000 (bench/RESULTS.md "The C heap of one-shot commands").
Transparent huge pages for the heap (grown once and marked MADV_HUGEPAGE) cut the faults
to ~546,000 but cost 0.7-0.9 s more system time there: faulting huge pages took 3-4 times
the system time of 4 KiB pages for the same memory on our machines. Python's own
allocator (objects up to 512 bytes, in 1 MiB arenas) can only be chosen before the
interpreter starts (PYTHONMALLOC). The daemon (`reconcile run`) does not call this: it
lives long and gives memory back (engine.daemon.release_free_heap). Where the C library
is not glibc (musl, macOS) or ctypes is missing, nothing is done.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_MAX = 32 << 20  # larger values are refused on 64-bit
INT_MAX = (1 << 31) - 1


def tune_heap() -> bool:
    """Set this process's C heap up for a heavy one-shot command (see the module's
    docstring). Call it once, early, before any thread is started. Returns whether it
    was done (False: not glibc, or no ctypes). Never raises."""
    libc = _glibc()
    if libc is None:
        return False
    for parameter, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX),
        (M_TRIM_THRESHOLD, INT_MAX),
        (M_ARENA_MAX, 1),
    ):
        libc.mallopt(parameter, value)
    return True


def _glibc() -> Any | None:
    """The C library, with mallopt's prototype, if it is glibc on Linux."""
    if sys.platform != "linux" or not _is_glibc():
        return None
    try:
        import ctypes
    except ImportError:  # an interpreter built without it
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # not the library we took it for
        return None
    return libc


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):
        return False
