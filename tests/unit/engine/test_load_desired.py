"""A long-running process patches its desired jobs by the files that changed; the
result must be exactly the mapping a fresh load builds, pass after pass."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from reconciler.core.state import DerivedDict, DesiredJob
from reconciler.engine.reconcile import ReconcileCaches, load_desired
from reconciler.settings import Settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def job(name: str, minute: int) -> str:
    task = "reconciler.tasks.example_task"
    return f"name: {name}\ntask: {task}\nschedule: {{cron: '{minute} * * * *'}}\n"


def write(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    # Old enough for the load cache to trust its signature, and distinct on every write.
    stamp = 1_700_000_000 + tick
    os.utime(path, (stamp, stamp))


def summary(jobs: Mapping[str, DesiredJob]) -> dict[str, tuple[str, str, int]]:
    return {name: (j.spec_hash, j.source, j.line) for name, j in jobs.items()}


def test_patched_desired_jobs_equal_a_fresh_load(tmp_path: Path) -> None:
    rng = random.Random(7)
    settings = Settings(jobs_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/unused.db")
    caches = ReconcileCaches()
    files = [tmp_path / f"f{n}.yaml" for n in range(6)]
    names = [f"job-{n}" for n in range(10)]
    patched_passes = 0
    for tick in range(120):
        for path in rng.sample(files, rng.randint(1, 2)):
            roll = rng.random()
            if roll < 0.15:
                path.unlink(missing_ok=True)
            elif roll < 0.25:
                write(path, "name: broken\ntask: [unclosed\n", tick)
            elif roll < 0.5 and path.exists():  # re-read: the same names, perhaps edited
                text = path.read_text()
                write(path, text.replace("* * * *", "*/2 * * *", 1) if roll < 0.4 else text, tick)
            else:  # jobs may move between files, or be declared twice (both quarantined)
                chosen = rng.sample(names, rng.randint(1, 3))
                write(path, "---\n".join(job(n, rng.randint(0, 2)) for n in chosen), tick)
        previous = caches.loaded[1] if caches.loaded is not None else None
        patched = load_desired(settings, caches, now=NOW)
        fresh = load_desired(settings, ReconcileCaches(), now=NOW)
        assert summary(dict(patched.jobs)) == summary(dict(fresh.jobs))
        assert list(patched.jobs) == list(fresh.jobs)  # the same order, too
        assert list(patched.quarantined) == list(fresh.quarantined)
        if previous is not None and previous is not patched.jobs:
            # What the mapping says changed is all that changed (the plan trusts it).
            assert isinstance(patched.jobs, DerivedDict) and patched.jobs.base is previous
            unchanged = (set(previous) | set(patched.jobs)) - patched.jobs.changed
            assert all(previous.get(n) is patched.jobs.get(n) is not None for n in unchanged)
            patched_passes += 1
    assert patched_passes > 80
