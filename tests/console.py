"""The console script as users run it, for tests that drive `reconcile` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RECONCILE = str(Path(sys.executable).parent / "reconcile")


def console(cwd: Path) -> Callable[..., str]:
    """`reconcile(*args) -> stdout`: the console script run in `cwd` with none of the
    caller's RECONCILER_* settings (the defaults: ./jobs.d, SQLite in the state folder);
    a non-zero exit fails the test with its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}

    def reconcile(*args: str) -> str:
        done = subprocess.run([RECONCILE, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return reconcile
