"""OwnedJobStore writes the jobs a scheduler pass fired back in one statement, each only
if its row is still as read: a writer in between (a CLI apply) wins. Both databases."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.store import jobstore
from reconciler.store.db import create_sync_engine
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import apscheduler_jobs, scheduled_jobs

pytestmark = pytest.mark.services

NOW = datetime.now(UTC).replace(microsecond=0)


def noop() -> None:
    """The jobs' callable (never called: the scheduler stays paused)."""


def own(engine: sa.Engine, names: list[str]) -> None:
    rows = [
        {
            "name": name,
            "spec": {},
            "spec_hash": "0" * 64,
            "task": "reconciler.tasks.noop",
            "queue": "default",
            "labels": {},
            "status": "active",
            "source_file": "a.yaml",
            "source_line": 1,
            "created_at": NOW,
            "updated_at": NOW,
        }
        for name in names
    ]
    with engine.begin() as connection:
        connection.execute(scheduled_jobs.insert(), rows)


def test_a_pass_writes_back_what_it_fired_unless_someone_wrote_first(db_url: str) -> None:
    upgrade_database(db_url)
    engine = create_sync_engine(db_url)
    names = [f"job-{n}" for n in range(3)]
    own(engine, names)
    store = OwnedJobStore(engine=engine)
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        for name in names:
            trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(minutes=5))
            scheduler.add_job(noop, trigger, id=name, next_run_time=NOW - timedelta(minutes=1))
        due = store.get_due_jobs(NOW)
        assert sorted(job.id for job in due) == names
        # Someone else rewrites job-1 between the read and the write-back (a CLI apply).
        with engine.begin() as connection:
            row = apscheduler_jobs.c.id == "job-1"
            state = pickle.loads(
                connection.execute(sa.select(apscheduler_jobs.c.job_state).where(row)).scalar_one()
            )
            state["name"] = "rewritten"
            connection.execute(
                apscheduler_jobs.update()
                .where(row)
                .values(next_run_time=12345.0, job_state=pickle.dumps(state))
            )
        for job in due:
            job._modify(next_run_time=NOW + timedelta(minutes=1))
            store.update_job(job)
        store.flush()
        with engine.connect() as connection:
            stored = dict(
                connection.execute(
                    sa.select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
                ).all()
            )
        later = (NOW + timedelta(minutes=1)).timestamp()
        assert stored == {"job-0": later, "job-1": 12345.0, "job-2": later}
        # The states written back are readable, with the new next run time.
        assert {job.id: job.next_run_time for job in store.get_all_jobs()}["job-2"] == (
            NOW + timedelta(minutes=1)
        )
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()


def test_a_failed_write_back_is_kept_and_retried_without_raising(db_url: str) -> None:
    """APScheduler 3 calls get_next_run_time outside any try: had the write-back's error
    left it, the scheduler's thread would have ended for good (no more fires) while the
    process kept leading. The table is taken away (renamed) while a pass writes back."""
    engine, scheduler, store = fired_and_pending(db_url)
    table = apscheduler_jobs.name
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        before = datetime.now(UTC)
        wake = store.get_next_run_time()  # fails inside: must not raise
        assert wake is not None and before < wake <= datetime.now(UTC) + timedelta(seconds=5)
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {table}_away RENAME TO {table}"))
        assert store.get_next_run_time() == NOW + timedelta(minutes=1)  # written now
        with engine.connect() as connection:
            stored = connection.execute(sa.select(apscheduler_jobs.c.next_run_time)).scalar()
        assert stored == (NOW + timedelta(minutes=1)).timestamp()
        assert {j.id: j.next_run_time for j in store.get_all_jobs()} == {
            "job-0": NOW + timedelta(minutes=1)
        }
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()


def test_a_write_back_still_failing_at_shutdown_does_not_stop_it(db_url: str) -> None:
    """The kept write-back is tried once more by the store's shutdown; failing there, it
    is logged: the scheduler still shuts down (its thread joined, the daemon hands the
    lock over)."""
    engine, scheduler, _ = fired_and_pending(db_url)
    table = apscheduler_jobs.name
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        scheduler.shutdown(wait=True)  # must not raise
        assert not scheduler.running
    finally:
        engine.dispose()


def test_a_write_back_failing_for_good_fails_the_store_and_waits_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept pending, a write-back that fails on every retry (a statement timeout shorter
    than a burst's UPDATE, a row a trigger refuses) stopped every fire of the leader
    with its thread alive and its health green. Past GIVE_UP_SECONDS and
    GIVE_UP_ATTEMPTS the store fails (the daemon then gives the lead up) and fires
    nothing more; the retries do not wait for the same burst's publishing again."""
    monkeypatch.setattr(jobstore, "GIVE_UP_SECONDS", 0.3)
    announced: list[int] = []
    engine, scheduler, store = fired_and_pending(db_url, before_write_back=announced.append)
    table = apscheduler_jobs.name
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        store.get_next_run_time()  # the pass's write-back fails: retried
        time.sleep(0.4)
        store.get_next_run_time()  # past the time span, not past the attempts
        assert store.failure is None
        with pytest.raises(sa.exc.DatabaseError):
            store.get_due_jobs(NOW)  # APScheduler logs it ("Error getting due jobs")
        assert store.failure is not None
        assert "could not write back 1 fired jobs" in store.failure
        assert announced == [1]  # the burst was waited for once, not on every retry
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {table}_away RENAME TO {table}"))
        # Written back now, but a failed store fires nothing more: the lead goes.
        assert store.get_due_jobs(NOW + timedelta(minutes=2)) == []
        assert store.get_next_run_time() is None
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()


def fired_and_pending(
    db_url: str, *, before_write_back: Callable[[int], object] | None = None
) -> tuple[sa.Engine, BackgroundScheduler, OwnedJobStore]:
    """A paused scheduler on the store whose one job a pass has fired: its write-back
    pending (moving it from NOW - 1 min to NOW + 1 min)."""
    upgrade_database(db_url)
    engine = create_sync_engine(db_url)
    own(engine, ["job-0"])
    store = OwnedJobStore(engine=engine, before_write_back=before_write_back)
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)
    trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(minutes=5))
    scheduler.add_job(noop, trigger, id="job-0", next_run_time=NOW - timedelta(minutes=1))
    (job,) = store.get_due_jobs(NOW)
    job._modify(next_run_time=NOW + timedelta(minutes=1))
    store.update_job(job)
    return engine, scheduler, store
