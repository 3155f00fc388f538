"""OwnedJobStore.rewind_lost_slots: the slots a killed (or fenced) leader lost between
APScheduler moving next_run_time on and the Dispatcher recording them are made due again
by the next leader, and nothing else is. Deterministic: the "crash" is written into the
tables (the SIGKILL test in test_exactly_once shows the real one)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.jobstore import OwnedJobStore

from .helpers import job_yaml

pytestmark = pytest.mark.services  # runs on SQLite and PostgreSQL


@pytest.fixture
def store(migrated_db_url: str, tmp_path: Path):
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "a.yaml").write_text(job_yaml("every-minute", cron="* * * * *"))
    (jobs / "b.yaml").write_text(job_yaml("jittery", cron="* * * * *", jitter_seconds=5))
    (jobs / "c.yaml").write_text(job_yaml("never-fired", cron="* * * * *"))
    engine = create_sync_engine(migrated_db_url)
    settings = Settings(database_url=migrated_db_url, jobs_dir=jobs)
    reconcile_once(engine, settings, trigger="cli")
    yield OwnedJobStore(engine=engine), engine
    engine.dispose()


def next_run(engine, job: str) -> datetime:
    with engine.connect() as connection:
        stamp = connection.execute(
            sa.text("SELECT next_run_time FROM apscheduler_jobs WHERE id = :j"), {"j": job}
        ).scalar_one()
    return datetime.fromtimestamp(stamp, UTC)


def record_slot(engine, job: str, slot: datetime, *, changed_at: datetime) -> None:
    """A ledger row for `slot`, and the job last changed at `changed_at`."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO job_runs (id, job_name, scheduled_time, status, task, queue, "
                "idempotency_key, publish_attempts, retries, duplicates, updated_at) VALUES "
                "(:id, :job, :slot, 'published', 't', 'default', :id, 1, 0, 0, :slot)"
            ),
            {"id": str(uuid.uuid4()), "job": job, "slot": slot},
        )
        connection.execute(
            sa.text("UPDATE scheduled_jobs SET updated_at = :t WHERE name = :job"),
            {"t": changed_at, "job": job},
        )


def test_the_slot_after_the_newest_ledger_row_is_made_due_again(store) -> None:
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    # The dead leader recorded the slot two minutes before next_run_time and lost the
    # one in between (next_run_time had already moved past it).
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=2),
        changed_at=upcoming - timedelta(hours=1),
    )
    rewound = store.rewind_lost_slots()
    assert rewound == [("every-minute", upcoming - timedelta(minutes=1))]
    assert next_run(engine, "every-minute") == upcoming - timedelta(minutes=1)
    job = store.lookup_job("every-minute")  # the pickled state agrees with the column
    assert job.next_run_time == upcoming - timedelta(minutes=1)
    assert store.rewind_lost_slots() == []  # idempotent


def test_nothing_is_rewound_when_nothing_was_lost(store) -> None:
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=1),  # the slot just before next_run_time: no gap
        changed_at=upcoming - timedelta(hours=1),
    )
    assert store.rewind_lost_slots() == []
    assert next_run(engine, "every-minute") == upcoming


def test_a_job_changed_after_its_newest_slot_is_left_alone(store) -> None:
    """Paused and resumed, or rescheduled: its next_run_time was set from "now" by an
    apply, and the slots in between must NOT run (an apply never causes an extra run)."""
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=10),
        changed_at=upcoming - timedelta(minutes=2),
    )
    assert store.rewind_lost_slots() == []
    assert next_run(engine, "every-minute") == upcoming


def test_jittered_and_never_fired_jobs_are_left_alone(store) -> None:
    store, engine = store
    upcoming = next_run(engine, "jittery")
    record_slot(
        engine, "jittery", upcoming - timedelta(minutes=5), changed_at=upcoming - timedelta(hours=1)
    )
    before = next_run(engine, "never-fired")
    assert store.rewind_lost_slots() == []
    assert next_run(engine, "jittery") == upcoming
    assert next_run(engine, "never-fired") == before
