"""Benchmark of `reconcile apply` against the seed's one-job-at-a-time path, on PostgreSQL.

    .venv/bin/python bench/bench_apply.py [--jobs 10000] [--per-file 10] [--seed-jobs 10000]

Side by side, in one run, each in a fresh database on 127.0.0.1:
- seed:    per job, APScheduler `add_job` on a started-paused scheduler with
           SQLAlchemyJobStore, plus an ORM insert into an inventory table and a commit
           (what the seed's POST /api/v1/jobs did, job after job);
- cold:    `reconcile_once` on an empty database (load 1,000 files, plan, one transaction),
           as `reconcile apply` runs it (no caches, no cyclic garbage collector);
           the jobs folder is a git checkout, so every pass also reads its revision;
- daemon's first pass: a daemon's startup pass over that state (reads everything);
- no-op:   a pass with the daemon's warm caches, nothing changed;
- one file changed: one file of 10 jobs edited and committed, warm caches;
- no-op after fires: 1,000 scheduler rows rewritten as the leader's scheduler does after
           firing them (next_run_time moved, state re-pickled), nothing else changed.
Each of ours runs in a fresh interpreter (peak RSS is that process's own ru_maxrss).

Targets (issue 3): cold >= 15x faster than seed; no-op <= 0.2 s; one file <= 0.1 s;
peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchdb import fresh_database

OURS = r"""
import gc, json, resource, sys, time
from pathlib import Path
from reconciler.engine.reconcile import ReconcileCaches, reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database
url, jobs_dir = sys.argv[1], Path(sys.argv[2])
settings = Settings(database_url=url, jobs_dir=jobs_dir, max_delete_fraction=1.0)
upgrade_database(url)
engine = create_sync_engine(url)
caches = ReconcileCaches()
def timed(caches=caches, trigger="watch"):
    start = time.perf_counter()
    result = reconcile_once(engine, settings, trigger=trigger, caches=caches)
    return time.perf_counter() - start, dict(result.plan.summary)
# The cold apply runs as `reconcile apply` does: no caches (nothing is kept for a next
# pass) and no cyclic collector (reconciler.cli.ONE_SHOT_COMMANDS).
gc.disable()
cold, cold_summary = timed(caches=None, trigger="cli")
cold_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
gc.enable()
gc.collect()
# Then a daemon: its first pass reads and decodes everything, the later ones only
# what changed. It keeps its collector.
first = timed(trigger="startup")[0]
noops = [timed()[0] for _ in range(5)]
one = []
target = sorted(jobs_dir.rglob("*.yaml"))[0]
original = target.read_text()
def commit(message):  # what a git pull on the server leaves: a clean checkout
    import subprocess
    git = ["git", "-C", str(jobs_dir), "-c", "user.name=bench", "-c", "user.email=b@b"]
    subprocess.run([*git, "commit", "-qam", message], check=True)
for round_ in range(5):
    target.write_text(original.replace("*/5 * * * *", f"{round_ + 1} * * * *"))
    commit(f"round {round_}")
    seconds, summary = timed()
    assert summary["update"] == 10, summary
    one.append(seconds)
def fire(count, offset):
    # What the leader's scheduler writes after firing `count` jobs: next_run_time moved
    # on, in its column and in the pickled state, as OwnedJobStore loads (load_state)
    # and writes back (pickle_state) a fired job.
    from datetime import timedelta
    import sqlalchemy as sa
    from reconciler.store.job_state import load_state, pickle_state
    with engine.begin() as connection:
        rows = connection.execute(sa.text(
            "SELECT id, job_state FROM apscheduler_jobs ORDER BY id OFFSET :o LIMIT :n"
        ), {"o": offset, "n": count}).all()
        updates = []
        for row_id, state in rows:
            data = load_state(state)
            data["next_run_time"] += timedelta(minutes=5)
            updates.append({"i": row_id, "n": data["next_run_time"].timestamp(),
                            "s": pickle_state(data)})
        connection.execute(sa.text(
            "UPDATE apscheduler_jobs SET next_run_time = :n, job_state = :s WHERE id = :i"
        ), updates)
fired = []
for round_ in range(5):
    fire(1000, round_ * 1000)
    seconds, summary = timed()
    assert not any(summary.values()), summary
    fired.append(seconds)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cold": cold, "cold_summary": cold_summary, "first": first,
                  "noop": sorted(noops)[2], "one_file": sorted(one)[2],
                  "after_fires": sorted(fired)[2], "cold_rss_mb": cold_rss,
                  "peak_rss_mb": peak}))
"""

SEED = r"""
import sys, time, uuid
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.cron import CronTrigger
url, count = sys.argv[1], int(sys.argv[2])
class Base(DeclarativeBase): pass
class ScheduledJob(Base):
    __tablename__ = "seed_scheduled_jobs"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(191))
    trigger_type: Mapped[str] = mapped_column(sa.String(16))
    task_name: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(16))
engine = sa.create_engine(url)
Base.metadata.create_all(engine)
scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=engine)})
scheduler.start(paused=True)
start = time.perf_counter()
for index in range(count):
    job_id = str(uuid.uuid4())
    scheduler.add_job("reconciler.dispatch.fire:fire_job", CronTrigger.from_crontab("*/5 * * * *"),
                      id=job_id, kwargs={"job": f"job-{index}", "payload": {"task": "t"}})
    with Session(engine) as session:
        session.add(ScheduledJob(id=job_id, name=f"job-{index}", trigger_type="cron",
                                 task_name="reconciler.tasks.example_task", status="active"))
        session.commit()
print(time.perf_counter() - start)
scheduler.shutdown(wait=False)
"""


def write_jobs(root: Path, jobs: int, per_file: int) -> None:
    for file_index in range(jobs // per_file):
        documents = [
            f"name: job-{file_index:04d}-{slot}\ntask: reconciler.tasks.example_task\n"
            f'schedule: {{cron: "*/5 * * * *"}}\nkwargs: {{data: {{n: {slot}}}}}\n'
            f"labels: {{team: t{file_index % 9}}}\n"
            for slot in range(per_file)
        ]
        path = root / f"team{file_index % 20}" / f"file{file_index:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\n".join(documents))


def git_checkout(root: Path) -> None:
    """Make the jobs folder a git checkout, as deployed: every pass reads its revision."""
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=b@b"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "jobs"]):
        subprocess.run([*git, *command], check=True)


def run_child(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--seed-jobs", type=int, default=10_000)
    options = parser.parse_args()
    with fresh_database() as ours_db, fresh_database() as seed_db:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "jobs.d"
            write_jobs(root, options.jobs, options.per_file)
            git_checkout(root)
            ours = json.loads(
                run_child(OURS, f"postgresql://postgres@127.0.0.1:5432/{ours_db}", str(root))
            )
        seed_seconds = float(
            run_child(
                SEED,
                f"postgresql+psycopg://postgres@127.0.0.1:5432/{seed_db}",
                str(options.seed_jobs),
            )
        )
    seed_for_same = seed_seconds * options.jobs / options.seed_jobs
    print(f"jobs: {options.jobs} in {options.jobs // options.per_file} files (PostgreSQL)")
    print(
        f"seed path ({options.seed_jobs} jobs):  {seed_seconds:8.2f} s "
        f"({options.seed_jobs / seed_seconds:,.0f} jobs/s)"
    )
    print(
        f"cold apply:             {ours['cold']:8.2f} s  "
        f"-> {seed_for_same / ours['cold']:.1f}x faster than the seed path (target >= 15x)"
    )
    print(f"daemon's first pass:    {ours['first']:8.3f} s  (reads and decodes everything)")
    print(f"no-op reconcile:        {ours['noop']:8.3f} s  (target <= 0.2 s; median of 5)")
    print(f"one file changed:       {ours['one_file']:8.3f} s  (target <= 0.1 s; median of 5)")
    print(f"no-op after 1,000 fires:{ours['after_fires']:8.3f} s  (rows moved on; median of 5)")
    print(f"peak RSS of the apply:  {ours['cold_rss_mb']:8.0f} MB (target <= 300 MB)")
    print(f"peak RSS, daemon too:   {ours['peak_rss_mb']:8.0f} MB (the same process, all passes)")
    print(f"cold plan summary: {ours['cold_summary']}")


if __name__ == "__main__":
    main()
