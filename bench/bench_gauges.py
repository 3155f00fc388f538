"""The leader's per-job gauge refresh (engine/gauges.py), in process, on PostgreSQL.

    .venv/bin/python bench/bench_gauges.py              # --jobs 10000 [--corpus]

HERD jobs of one hourly cron (or, with --corpus, bench/corpus.py's varied jobs), applied
by `reconcile_once`; then `JobGauges.refresh` timed (wall and this thread's CPU) as the
daemon calls it:
- first:    the first refresh after the startup pass (every series made);
- idle:     the next one, nothing changed (what runs every 10 s);
- herd:     after every job's newest ledger slot moved to one second ago (the refresh
            that follows a `:00` herd);
- herd+90s: after every job's newest slot moved to ten minutes ago (the refresh once
            the herd's slots are older than their grace, when "was the next slot
            absent?" must be answered).
The database is created and dropped here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from benchdb import create_database, drop_database

sys.path.insert(0, str(Path(__file__).parent))

_MOVE_SLOTS = sa.text(
    "INSERT INTO job_runs (id, job_name, scheduled_time, status, task, queue, "
    "idempotency_key, updated_at) "
    "SELECT md5(name || :slot), name, :slot, 'published', 'reconciler.tasks.noop', "
    "'default', name || :slot, now() FROM scheduled_jobs"
)


_AGE_INVENTORY = sa.text("UPDATE scheduled_jobs SET updated_at = updated_at - interval '1 day'")


def timed(label: str, action) -> None:
    wall, cpu = time.perf_counter(), time.thread_time()
    action()
    print(
        f"  {label:<9} wall {time.perf_counter() - wall:7.3f} s   "
        f"CPU {time.thread_time() - cpu:7.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--corpus", action="store_true", help="bench/corpus.py's varied jobs")
    options = parser.parse_args()

    os.environ.setdefault("RECONCILER_TASK_ALLOWLIST", "reconciler.tasks.*")
    from reconciler.engine.gauges import JobGauges
    from reconciler.engine.reconcile import ReconcileCaches, reconcile_once
    from reconciler.settings import Settings
    from reconciler.store.db import create_sync_engine
    from reconciler.store.migrate import upgrade_database

    name = create_database()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            jobs = Path(folder)
            if options.corpus:
                from corpus import generate

                generate(jobs, files=options.jobs // 10, per_file=10)
            else:
                for start in range(0, options.jobs, 100):
                    (jobs / f"jobs-{start:05d}.yaml").write_text(
                        "---\n".join(
                            f"name: job-{n:05d}\ntask: reconciler.tasks.noop\n"
                            'schedule: {cron: "0 * * * *"}\n'
                            for n in range(start, min(start + 100, options.jobs))
                        )
                    )
            settings = Settings(database_url=url, jobs_dir=jobs, max_delete_fraction=1.0)
            upgrade_database(url)
            engine = create_sync_engine(url)
            caches = ReconcileCaches()
            result = reconcile_once(engine, settings, trigger="cli", caches=caches)
            assert result.plan.summary.get("add") == options.jobs, result.plan.summary
            with engine.begin() as connection:  # applied a day ago: the slots are newer
                connection.execute(_AGE_INVENTORY)
            gauges = JobGauges()

            def refresh() -> None:
                gauges.refresh(engine, caches.essences, caches.memory.triggers)

            def move_slots(ago: timedelta) -> None:
                slot = (datetime.now(UTC) - ago).replace(microsecond=0)
                with engine.begin() as connection:
                    connection.execute(_MOVE_SLOTS, {"slot": slot})

            kind = "corpus" if options.corpus else "'0 * * * *'"
            print(f"gauge refresh, {options.jobs} jobs ({kind}), PostgreSQL")
            timed("first", refresh)
            timed("idle", refresh)
            move_slots(timedelta(minutes=10))
            timed("herd+90s", refresh)
            timed("idle", refresh)
            move_slots(timedelta(seconds=1))
            timed("herd", refresh)
            timed("idle", refresh)
            engine.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
