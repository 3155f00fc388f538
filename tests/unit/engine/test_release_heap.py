"""release_free_heap gives the free pages of the C heap back: what a daemon's warm-up
and startup pass leave resident otherwise (hundreds of MB at 100,000 jobs)."""

from __future__ import annotations

import pytest

from reconciler.engine.daemon import _malloc_trim, release_free_heap


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(_malloc_trim() is None, reason="no malloc_trim in this C library")
def test_the_free_heap_goes_back_to_the_system() -> None:
    # 1 KB objects: malloc's (not pymalloc's), one in ten kept, so that the freed ones
    # lie below live ones and stay resident until trimmed.
    blocks = [bytes(1000) + bytes([n % 256]) for n in range(200_000)]
    kept = blocks[::10]
    del blocks
    before = resident_mb()
    release_free_heap()
    after = resident_mb()
    assert len(kept) == 20_000
    assert before - after > 50, (before, after)
