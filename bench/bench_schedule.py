"""Benchmark of the schedule engine (issue 11), side by side with APScheduler's CronTrigger
and with the main branch's build, all measured in ONE run (the machine is shared: only
ratios measured together mean something).

    .venv/bin/python bench/bench_schedule.py [--crons 1440] [--jobs 10000] [--rounds 3]
        [--main /work/main]

A. `reconcile next` for 1,440 distinct crons (`m h * * *`, every minute of the day, in
   Europe/Berlin), 10 fires each, in-process: ours = the command's own path (JobSpec
   validation + `upcoming_fires`), every cache cleared per round; APScheduler =
   `CronTrigger.from_crontab` + 10 chained `get_next_fire_time` calls.
B. The fire-time part of a plan of 10,000 cron jobs (7 zones, a mix of crons), in-process:
   ours = `build_trigger` + `next_fire_times(count=3)` (what the plan calls), caches cleared;
   APScheduler = `CronTrigger.from_crontab` + 3 fires per job.
C. `reconcile plan --format json` of those 10,000 jobs (1,000 files) on a fresh SQLite
   database, as a user runs it: this build vs the main branch's code (--main; run with
   this venv, the package taken from that checkout), alternating, median of the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
)
CRONS = ("*/5 * * * *", "0 9 * * 1-5", "@daily", "30 2 * * *", "0 */2 * * *", "15 3 1 * *",
         "*/30 * * * * *", "0 0 * * 0", "45 23 * * *")  # fmt: skip
NOW = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


def clear_caches() -> None:
    """The process-wide memos (docs/architecture.md); trigger memories are per owner,
    and the calls measured here pass none."""
    from reconciler.spec import cron

    cron._compile_text.cache_clear()
    cron._compile_map.cache_clear()


def bench_next(count: int) -> tuple[float, float]:
    from apscheduler.triggers.cron import CronTrigger

    from reconciler.core.triggers import upcoming_fires
    from reconciler.spec.model import JobSpec

    crons = [f"{m % 60} {m // 60} * * *" for m in range(count)]
    clear_caches()
    start = time.perf_counter()
    for expression in crons:
        spec = JobSpec.model_validate(
            {"name": "cron", "task": "reconciler.tasks.noop", "schedule": {"cron": expression},
             "timezone": "Europe/Berlin"}
        )  # fmt: skip
        upcoming_fires(spec, after=NOW, count=10)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for expression in crons:
        trigger = CronTrigger.from_crontab(expression, timezone="Europe/Berlin")
        moment = trigger.get_next_fire_time(None, NOW)
        for _ in range(9):
            moment = trigger.get_next_fire_time(moment, moment)
    theirs = time.perf_counter() - start
    return ours / count, theirs / count


def job_specs(jobs: int) -> list[dict]:
    return [
        {
            "name": f"job-{n:05d}",
            # A task the default allowlist admits (as bench/corpus.py): part C plans
            # these files with the user's default settings.
            "task": "reconciler.tasks.example_task",
            "schedule": {"cron": CRONS[n % len(CRONS)] if n % 3 else f"{n % 60} {n % 24} * * *"},
            "timezone": ZONES[n % len(ZONES)],
        }
        for n in range(jobs)
    ]


def bench_plan_fires(documents: list[dict]) -> tuple[float, float]:
    from apscheduler.triggers.cron import CronTrigger

    from reconciler.core.triggers import TriggerMemory, next_fire_times
    from reconciler.spec.model import JobSpec

    specs = [JobSpec.model_validate(d) for d in documents]
    clear_caches()
    start = time.perf_counter()
    memory = TriggerMemory()  # as a plan's: make_plan keeps one (CoreMemory.triggers)
    for spec in specs:
        next_fire_times(spec, after=NOW, count=3, memory=memory)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for document in documents:
        expression = document["schedule"]["cron"]
        fields = expression.split()
        zone = document["timezone"]
        if len(fields) == 6:  # seconds first: from_crontab knows 5 fields only
            trigger = CronTrigger(second=fields[0], minute=fields[1], hour=fields[2],
                                  day=fields[3], month=fields[4], day_of_week=fields[5],
                                  timezone=zone)  # fmt: skip
        else:
            trigger = CronTrigger.from_crontab(
                {"@daily": "0 0 * * *"}.get(expression, expression), timezone=zone
            )
        moment = trigger.get_next_fire_time(None, NOW)
        for _ in range(2):
            moment = trigger.get_next_fire_time(moment, moment)
    theirs = time.perf_counter() - start
    return ours / len(documents), theirs / len(documents)


def write_jobs(documents: list[dict], folder: Path, per_file: int = 10) -> None:
    import yaml

    for index in range(0, len(documents), per_file):
        chunk = documents[index : index + per_file]
        (folder / f"jobs-{index // per_file:04d}.yaml").write_text(
            yaml.safe_dump_all(chunk, sort_keys=False)
        )


_FROM_CHECKOUT = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in str(getattr(f, "__module__", ""))]
sys.path.insert(0, {root!r})
import reconciler
assert reconciler.__file__.startswith({root!r}), reconciler.__file__
from reconciler.cli import main
sys.argv[0] = "reconcile"
sys.exit(main())
"""


def plan_seconds(jobs_dir: Path, package_root: Path | None) -> float:
    """One `reconcile plan` of `jobs_dir` against a fresh SQLite database, wall time."""
    with tempfile.TemporaryDirectory() as state:
        env = dict(os.environ)
        env.update(
            RECONCILER_JOBS_DIR=str(jobs_dir),
            RECONCILER_DATABASE_URL=f"sqlite:///{state}/state.db",
        )
        command = [sys.executable, "-m", "reconciler.cli", "plan", "--format", "json"]
        if package_root is not None:
            # This venv's editable install puts its finder on sys.meta_path ahead of
            # PYTHONPATH: drop it, so that `reconciler` comes from that checkout.
            command[1:3] = ["-c", _FROM_CHECKOUT.format(root=str(package_root))]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=state)
        elapsed = time.perf_counter() - start
        if done.returncode not in (0, 2):
            raise SystemExit(f"plan failed ({package_root}): {done.stderr[-2000:]}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crons", type=int, default=1440)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--main", type=Path, default=Path("/work/main"))
    args = parser.parse_args()

    nexts = [bench_next(args.crons) for _ in range(args.rounds)]
    ours, theirs = (statistics.median(x) for x in zip(*nexts, strict=True))
    print(f"A. reconcile next, {args.crons} crons x 10 fires (per cron, median of {args.rounds})")
    print(f"   ours {ours * 1e6:8.1f} us   APScheduler CronTrigger {theirs * 1e6:8.1f} us"
          f"   ratio ours/theirs {ours / theirs:.2f}")  # fmt: skip

    documents = job_specs(args.jobs)
    fires = [bench_plan_fires(documents) for _ in range(args.rounds)]
    ours, theirs = (statistics.median(x) for x in zip(*fires, strict=True))
    print(f"B. plan fire times, {args.jobs} cron jobs x 3 fires (per job, median)")
    print(f"   ours {ours * 1e6:8.1f} us   APScheduler CronTrigger {theirs * 1e6:8.1f} us"
          f"   ratio ours/theirs {ours / theirs:.2f}")  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        jobs_dir = Path(folder)
        write_jobs(documents, jobs_dir)
        this_build: list[float] = []
        main_build: list[float] = []
        for _ in range(args.rounds):
            this_build.append(plan_seconds(jobs_dir, None))
            if args.main.is_dir():
                main_build.append(plan_seconds(jobs_dir, args.main))
    ours = statistics.median(this_build)
    print(f"C. reconcile plan, {args.jobs} cron jobs, fresh SQLite (median of {args.rounds})")
    line = f"   this build {ours:6.2f} s ({ours / args.jobs * 1e6:6.1f} us/job)"
    if main_build:
        theirs = statistics.median(main_build)
        line += (f"   main {theirs:6.2f} s ({theirs / args.jobs * 1e6:6.1f} us/job)"
                 f"   ratio this/main {ours / theirs:.2f}")  # fmt: skip
    print(line)


if __name__ == "__main__":
    main()
