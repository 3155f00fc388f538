"""OwnedJobStore.rewind_lost_slots: the slots a killed (or fenced) leader lost between
APScheduler moving next_run_time on and the Dispatcher recording them are made due again
by the next leader, and nothing else is. Deterministic: the "crash" is written into the
tables (the SIGKILL test in test_exactly_once shows the real one)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import Settings
from reconciler.store import jobstore
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


def set_changed_at(engine, job: str, moment: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE scheduled_jobs SET updated_at = :t WHERE name = :job"),
            {"t": moment, "job": job},
        )


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
    set_changed_at(engine, job, changed_at)


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


def test_a_rewound_row_keeps_its_record(store) -> None:
    """The rewind rewrites the row's state (its next run time) and moves the row's
    record in written_scheduler_rows with it: a one-shot plan still need not decode it."""
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=2),
        changed_at=upcoming - timedelta(hours=1),
    )
    assert store.rewind_lost_slots() == [("every-minute", upcoming - timedelta(minutes=1))]
    with engine.connect() as connection:
        state, recorded = connection.execute(
            sa.text(
                "SELECT a.job_state, w.state_sha256 FROM apscheduler_jobs AS a "
                "JOIN written_scheduler_rows AS w ON w.id = a.id WHERE a.id = 'every-minute'"
            )
        ).one()
    assert recorded == hashlib.sha256(state).hexdigest()


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


def test_a_change_after_the_newest_slot_anchors_the_rewind(store) -> None:
    """Paused and resumed, or rescheduled: its next_run_time was set from that "now" by
    an apply, and the slots between its newest run and the change must NOT run (an apply
    never causes an extra run). A slot AFTER the change, lost, is made due again."""
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=10),
        changed_at=upcoming - timedelta(seconds=90),  # its first slot: upcoming - 1 min
    )
    assert store.rewind_lost_slots() == [("every-minute", upcoming - timedelta(minutes=1))]


def test_nothing_is_rewound_when_the_first_slot_after_a_change_is_still_due(store) -> None:
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=10),
        changed_at=upcoming - timedelta(seconds=30),  # its first slot: upcoming itself
    )
    assert store.rewind_lost_slots() == []
    assert next_run(engine, "every-minute") == upcoming


def test_a_never_fired_jobs_lost_first_slot_is_made_due_again(store) -> None:
    """No ledger row: the job's last change anchors it (bench/RESULTS.md, "FIRST slot")."""
    store, engine = store
    upcoming = next_run(engine, "never-fired")
    assert store.rewind_lost_slots() == []  # as applied: its first slot is still due
    set_changed_at(engine, "never-fired", upcoming - timedelta(seconds=150))
    # Two slots after the change were lost: the rewind goes back to the first of them
    # (APScheduler then coalesces or catches up, and records what it drops).
    assert store.rewind_lost_slots() == [("never-fired", upcoming - timedelta(minutes=2))]
    assert next_run(engine, "never-fired") == upcoming - timedelta(minutes=2)
    assert store.rewind_lost_slots() == []


def test_a_jittered_jobs_lost_slot_is_made_due_again_unjittered(store) -> None:
    """Its next_run_time is its slot plus up to 5 s: a lost slot shows as a next_run_time
    beyond the slot after the anchor plus the jitter. The ledger holds the jittered
    fire time of the slot before."""
    store, engine = store
    upcoming = next_run(engine, "jittery")
    slot = upcoming.replace(second=0, microsecond=0)  # every minute, jitter 5 s
    record_slot(
        engine,
        "jittery",
        slot - timedelta(minutes=2) + timedelta(seconds=3),
        changed_at=upcoming - timedelta(hours=1),
    )
    assert store.rewind_lost_slots() == [("jittery", slot - timedelta(minutes=1))]
    assert next_run(engine, "jittery") == slot - timedelta(minutes=1)


def test_nothing_is_rewound_for_a_jittered_job_within_its_jitter(store) -> None:
    store, engine = store
    upcoming = next_run(engine, "jittery")
    slot = upcoming.replace(second=0, microsecond=0)
    record_slot(
        engine,
        "jittery",
        slot - timedelta(minutes=1) + timedelta(seconds=4),
        changed_at=upcoming - timedelta(hours=1),
    )
    assert store.rewind_lost_slots() == []
    assert next_run(engine, "jittery") == upcoming


def test_an_interval_jobs_first_slot_is_a_slot_of_its_phase(
    store, migrated_db_url: str, tmp_path: Path
) -> None:
    """The anchor of a never-fired job is the moment it was applied, not a slot: its
    first slot after it comes from the schedule (phase fixed at INTERVAL_ANCHOR), not
    anchor + interval."""
    store, engine = store
    (tmp_path / "jobs.d" / "d.yaml").write_text(
        "name: every-90s\ntask: reconciler.tasks.noop\n"
        "schedule: {interval: {seconds: 90}}\nmax_concurrent_runs: 1000\n"
    )
    settings = Settings(database_url=migrated_db_url, jobs_dir=tmp_path / "jobs.d")
    reconcile_once(engine, settings, trigger="cli")
    upcoming = next_run(engine, "every-90s")
    set_changed_at(engine, "every-90s", upcoming - timedelta(seconds=100))
    assert store.rewind_lost_slots() == [("every-90s", upcoming - timedelta(seconds=90))]


def test_a_renamed_job_keeps_its_next_fire_and_nothing_is_rewound(
    store, migrated_db_url: str, tmp_path: Path
) -> None:
    """A rename moves the ledger rows to the new name and carries the next fire over: the
    slots the old name fired are never the new name's to fire again."""
    store, engine = store
    upcoming = next_run(engine, "every-minute")
    record_slot(
        engine,
        "every-minute",
        upcoming - timedelta(minutes=1),
        changed_at=upcoming - timedelta(hours=1),
    )
    (tmp_path / "jobs.d" / "a.yaml").write_text(
        job_yaml("renamed-minute", cron="* * * * *", previous_names="[every-minute]")
    )
    settings = Settings(database_url=migrated_db_url, jobs_dir=tmp_path / "jobs.d")
    reconcile_once(engine, settings, trigger="cli")
    with engine.connect() as connection:
        moved = connection.execute(
            sa.text("SELECT count(*) FROM job_runs WHERE job_name = 'renamed-minute'")
        ).scalar_one()
    assert moved == 1
    assert store.rewind_lost_slots() == []
    assert next_run(engine, "renamed-minute") == upcoming


def test_a_fenced_store_shows_nothing_due_and_moves_no_slot_on(store) -> None:
    """A scheduler whose process stopped leading: no due job, no next run time, and a
    job whose fire was refused is neither moved on nor removed (jobstore module doc)."""
    _, engine = store
    leading = True
    fenced = OwnedJobStore(engine=engine, is_leader=lambda: leading)
    upcoming = next_run(engine, "every-minute")
    [job] = [job for job in fenced.get_due_jobs(upcoming) if job.id == "every-minute"]
    leading = False
    assert fenced.get_due_jobs(upcoming) == []
    assert fenced.get_next_run_time() is None
    job.next_run_time = upcoming + timedelta(minutes=1)  # what APScheduler does next
    fenced.update_job(job)
    fenced.remove_job("every-minute")  # what it does for a one-off job's last fire
    fenced.flush()
    assert next_run(engine, "every-minute") == upcoming  # still due, for the leader
    leading = True
    assert "every-minute" in {job.id for job in fenced.get_due_jobs(upcoming)}
    assert fenced.get_next_run_time() is not None


def test_the_rewind_reads_the_jobs_a_chunk_at_a_time_and_keeps_no_state(
    store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of one row (keyset on next_run_time, id: three jobs at the same next run
    time): every job is looked at once, the lost slots of two are rewound, and no state
    read for the rewind stays behind (the scheduler reads its due jobs itself)."""
    store, engine = store
    monkeypatch.setattr(jobstore, "REWIND_CHUNK", 1)
    upcoming = next_run(engine, "every-minute")
    for job in ("every-minute", "never-fired"):
        record_slot(
            engine, job, upcoming - timedelta(minutes=2), changed_at=upcoming - timedelta(hours=1)
        )
    seen: list[str] = []
    real = OwnedJobStore._reconstitute_job

    def counting(self: OwnedJobStore, state: bytes):
        job = real(self, state)
        seen.append(job.id)
        return job

    monkeypatch.setattr(OwnedJobStore, "_reconstitute_job", counting)
    rewound = store.rewind_lost_slots()
    assert sorted(rewound) == [
        ("every-minute", upcoming - timedelta(minutes=1)),
        ("never-fired", upcoming - timedelta(minutes=1)),
    ]
    assert sorted(seen) == ["every-minute", "jittery", "never-fired"]
    assert store._read_states == {}
    assert store.rewind_lost_slots() == []  # idempotent
