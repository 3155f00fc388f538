"""The job files every benchmark runs on: varied, valid, realistic.

    .venv/bin/python bench/corpus.py DIR [--files 1000] [--per-file 10] [--git]

`generate(root, files=, per_file=)` writes FILES x PER_FILE jobs (5- and 6-field crons,
cron maps, intervals, one-off dates; 1,440 distinct cron expressions; four queues) in
FILES files under ten folders, each file aged a minute (a loader's cache does not trust
a file modified within the last second). 100,000 jobs: `--files 10000`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

QUEUES = ("default", "high_priority", "low_priority", "scheduled")


def job_text(number: int) -> str:
    """One realistic twelve-to-fourteen-line job; the schedule kind varies with the number."""
    kind = number % 10
    if kind < 6:
        schedule = f'  cron: "{number % 60} {number // 60 % 24} * * *"'
    elif kind == 6:
        schedule = f'  cron: "*/{number % 50 + 10} * * * * *"'
    elif kind == 7:
        schedule = f'  cron: {{minute: "*/{number % 30 + 1}", hour: "8-18"}}'
    elif kind == 8:
        schedule = f"  interval: {{minutes: {number % 120 + 1}}}"
    else:
        schedule = f"  at: 2031-{number % 12 + 1:02d}-01T09:00:00"
    return (
        f"name: job-{number:05d}\n"
        "task: reconciler.tasks.example_task\n"
        f'description: "generated job {number}"\n'
        "schedule:\n"
        f"{schedule}\n"
        f"queue: {QUEUES[number % 4]}\n"
        "timezone: Europe/Berlin\n"
        "misfire_grace_seconds: 30\n"
        "kwargs:\n"
        f"  data: {{key: value, n: {number}, url: https://example.com/hook}}\n"
        f"labels: {{team: t{number % 10}, tier: standard}}\n"
    )


def file_path(root: Path, file_number: int) -> Path:
    return root / f"team{file_number % 10}" / f"jobs-{file_number:05d}.yaml"


def file_text(file_number: int, per_file: int) -> str:
    return "---\n".join(job_text(file_number * per_file + k) for k in range(per_file))


def generate(root: Path, *, files: int, per_file: int) -> None:
    past = time.time_ns() - 60 * 10**9
    for file_number in range(files):
        path = file_path(root, file_number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_text(file_number, per_file), encoding="utf-8")
        os.utime(path, ns=(past, past))


def git_checkout(root: Path) -> None:
    """Make the jobs folder a git checkout, as deployed: every pass reads its revision."""
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=b@b"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "jobs"]):
        subprocess.run([*git, *command], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--git", action="store_true", help="make it a git checkout")
    options = parser.parse_args()
    generate(options.root, files=options.files, per_file=options.per_file)
    if options.git:
        git_checkout(options.root)


if __name__ == "__main__":
    main()
