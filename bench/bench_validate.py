"""Benchmark of job-file validation against the floor: plain PyYAML with libyaml.

    .venv/bin/python bench/bench_validate.py [--files 1000] [--jobs-per-file 10] [--rounds 3]

Generates FILES x JOBS_PER_FILE varied, valid jobs (5- and 6-field crons, cron maps,
intervals, dates; 1,440 distinct cron expressions) in a temporary folder, then times,
best of ROUNDS, interleaved so that machine noise hits all alike:

- floor:    `yaml.load_all(f, Loader=yaml.CSafeLoader)` over every file (no checks at all)
- load:     `load_jobs` (read, bound, parse, validate, check, cross-file duplicates)
- cached:   `load_jobs` again with a warm LoadCache and no file changed (the daemon's pass)
  (these three timed inside a fresh interpreter each, around the call only)
- validate: `reconcile validate DIR`, the whole process (start-up included), beside the
            floor as a whole `python -c` process, for a like-for-like comparison.

Target (issue 2): load <= 1.5 x floor; cached pass well under 0.1 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from corpus import generate

from reconciler.settings import Settings
from reconciler.spec.loader import load_jobs

# Each measurement runs in a fresh interpreter and times only the call itself, so that
# neither import time nor the heap of earlier measurements (garbage collection walks
# it) favours one side.
CHILD = """
import sys, time, yaml
from pathlib import Path
root, what = Path(sys.argv[1]), sys.argv[2]
if what == "floor":
    def run():
        docs = []
        for path in sorted(root.rglob("*.yaml")):
            with open(path, "rb") as handle:
                docs.extend(yaml.load_all(handle, Loader=yaml.CSafeLoader))
        return docs
else:
    from reconciler.settings import Settings
    from reconciler.spec.loader import LoadCache, load_jobs
    settings = Settings(max_nesting_depth=32, task_allowlist=("reconciler.tasks.*",))
    cache = LoadCache()
    if what == "cached":
        load_jobs(root, settings=settings, cache=cache)
    def run():
        return load_jobs(root, settings=settings, cache=cache if what == "cached" else None)
start = time.perf_counter()
result = run()
print(time.perf_counter() - start)
"""


def child_time(root: Path, what: str) -> float:
    """Seconds the measured call took inside a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), what], check=True, capture_output=True, text=True
    )
    return float(run.stdout.strip())


def process_time(command: list[str]) -> float:
    """Wall seconds of a whole process, start-up included."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--jobs-per-file", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    settings = Settings(max_nesting_depth=32, task_allowlist=("reconciler.tasks.*",))
    reconcile = str(Path(sys.executable).parent / "reconcile")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "jobs.d"
        generate(root, files=options.files, per_file=options.jobs_per_file)
        jobs = options.files * options.jobs_per_file
        result = load_jobs(root, settings=settings)
        assert len(result.jobs) == jobs and result.valid, result.diagnostics[:3]
        del result
        times: dict[str, list[float]] = {}
        for _ in range(options.rounds):
            runs: dict[str, Callable[[], float]] = {
                "floor": lambda: child_time(root, "floor"),
                "load": lambda: child_time(root, "load"),
                "cached": lambda: child_time(root, "cached"),
                "floor_process": lambda: process_time(
                    [sys.executable, "-c", CHILD, str(root), "floor"]
                ),
                "validate_process": lambda: process_time([reconcile, "validate", str(root)]),
            }
            for name, action in runs.items():
                times.setdefault(name, []).append(action())
        best = {name: min(values) for name, values in times.items()}
        report(best, jobs=jobs, files=options.files)


def report(best: dict[str, float], *, jobs: int, files: int) -> None:
    print(f"{jobs} jobs in {files} files, best of rounds, {os.cpu_count()} CPUs")
    for name, seconds in best.items():
        print(f"  {name:17} {seconds * 1000:9.1f} ms  {seconds * 1e6 / jobs:7.1f} us/job")
    print(f"  load / floor                 {best['load'] / best['floor']:.2f}x  (target <= 1.5x)")
    ratio = best["validate_process"] / best["floor_process"]
    print(f"  validate / floor (processes) {ratio:.2f}x")
    print(f"  cached no-change pass        {best['cached'] * 1000:.1f} ms  (target < 100 ms)")


if __name__ == "__main__":
    main()
