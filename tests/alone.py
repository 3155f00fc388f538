"""Tests that fork need a process with a single thread (reconciler.spec.parallel forks
only then). A pytest-xdist worker has more (execnet's), so there such a test would be
skipped, in CI always: instead it runs again, alone, in a fresh pytest process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reconciler.spec import parallel

_ALONE = "RECONCILER_TEST_ALONE"


def fork_here(request: pytest.FixtureRequest) -> bool:
    """True: this process can fork, run the test here. False: it was run alone in a
    fresh process and passed there (the caller returns). Skips without fork or a
    second CPU, where the code under test never forks either."""
    if parallel.can_fork():
        return True
    if not hasattr(os, "fork") or len(os.sched_getaffinity(0)) < 2 or os.environ.get(_ALONE):
        pytest.skip("needs fork and two CPUs")
    pytest_alone = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:xdist"]
    done = subprocess.run(
        [*pytest_alone, "-p", "no:cacheprovider", request.node.nodeid],
        cwd=request.config.rootpath,
        env={**os.environ, _ALONE: "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-4000:] + done.stderr
    return False
