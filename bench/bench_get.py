"""`reconcile get jobs` on 10,000 jobs (and 100,000 runs in the ledger), as a whole process:
what a user waits for, from exec to the last line. Target: <= 0.5 s.

    .venv/bin/python bench/bench_get.py [--repeat 7] [--postgres]

Seeds a throw-away SQLite file (and with --postgres a throw-away PostgreSQL database)
with bench_api's data set, then runs the console script `--repeat` times per output
format and reports the median and the best wall time, and the user+sys CPU of the child.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_api import PG_BASE, ROOT, seed
from benchdb import create_database, drop_database

from reconciler.store.migrate import upgrade_database

RECONCILE = str(Path(sys.executable).parent / "reconcile")
COMMANDS = (
    ("get jobs", ["get", "jobs"]),
    ("get jobs -o wide", ["get", "jobs", "-o", "wide"]),
    ("get jobs -o json", ["get", "jobs", "-o", "json"]),
    ("get jobs -l team=team-3", ["get", "jobs", "-l", "team=team-3"]),
    ("status", ["status"]),
)


def measure(url: str, argv: list[str], repeat: int) -> tuple[float, float, float, int]:
    walls, cpus, lines = [], [], 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [RECONCILE, "--database-url", url, *argv],
            capture_output=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        lines = done.stdout.count(b"\n")
    return statistics.median(walls), min(walls), statistics.median(cpus), lines


def report(database: str, url: str, repeat: int) -> None:
    for label, argv in COMMANDS:
        median, best, cpu, lines = measure(url, argv, repeat)
        print(
            f"{database:10s} {label:26s} median {median:.3f} s  best {best:.3f} s  "
            f"cpu {cpu:.3f} s  ({lines} lines)",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-get-") as folder:
        url = f"sqlite:///{Path(folder) / 'state.db'}"
        upgrade_database(url)
        seed(url)
        report("sqlite", url, args.repeat)
    if args.postgres:
        name = create_database()
        try:
            url = f"{PG_BASE}/{name}"
            upgrade_database(url)
            seed(url)
            report("postgresql", url, args.repeat)
        finally:
            drop_database(name)
    print(f"load average after: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
