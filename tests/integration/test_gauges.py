"""The daemon's per-job gauges follow the inventory: counts by status, next fire and
nominal interval per job, and a removed job's series disappear."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from reconciler.core.moments import as_utc
from reconciler.core.slots import slot_times
from reconciler.core.triggers import next_fire_times
from reconciler.core.vocabulary import JobStatus
from reconciler.engine import gauges as gauges_module
from reconciler.engine.daemon import Daemon
from reconciler.engine.gauges import ABSENT_AFTER_GRACE, JobGauges
from reconciler.engine.reconcile import ReconcileCaches, reconcile_once
from reconciler.settings import Settings
from reconciler.spec.model import IntervalSchedule, JobSpec
from reconciler.store import status
from reconciler.store.db import create_sync_engine
from reconciler.store.inventory import EssenceCache
from reconciler.store.status import read_job_rows
from reconciler.store.tables import job_runs, scheduled_jobs
from tests.integration.workspace import job_yaml


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_follow_the_inventory(tmp_path: Path, sqlite_url: str) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "a.yaml").write_text(job_yaml("gauge-a", cron="*/5 * * * *"))
    (jobs / "b.yaml").write_text(job_yaml("gauge-b", paused="true"))
    (jobs / "c.yaml").write_text(
        "name: gauge-c\ntask: reconciler.tasks.noop\nschedule: {interval: {minutes: 7}}\n"
    )
    settings = Settings(database_url=sqlite_url, jobs_dir=jobs, max_delete_fraction=1.0)
    from reconciler.store.migrate import upgrade_database

    upgrade_database(sqlite_url)
    engine = create_sync_engine(sqlite_url)
    caches, gauges = ReconcileCaches(), JobGauges()
    try:
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        gauges.refresh(engine, caches.essences, caches.memory.triggers)
        assert value("reconciler_managed_jobs", status="active") == 2
        assert value("reconciler_managed_jobs", status="paused") == 1
        assert value("reconciler_job_interval_seconds", job_name="gauge-a") == 300
        assert value("reconciler_job_interval_seconds", job_name="gauge-c") == 420
        assert value("reconciler_job_next_fire_timestamp_seconds", job_name="gauge-a")
        assert value("reconciler_job_next_fire_timestamp_seconds", job_name="gauge-b") is None
        (jobs / "c.yaml").unlink()
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        gauges.refresh(engine, caches.essences, caches.memory.triggers)
        assert value("reconciler_job_interval_seconds", job_name="gauge-c") is None
        assert value("reconciler_fires_total", job_name="gauge-c", outcome="published") is None
        assert value("reconciler_managed_jobs", status="active") == 1
        # Leadership lost: the per-job series go (a standby's would be frozen).
        gauges.forget_all()
        for name in ("reconciler_job_interval_seconds", "reconciler_job_slot_absent"):
            assert value(name, job_name="gauge-a") is None
        gauges.refresh(engine, caches.essences, caches.memory.triggers)  # leading again: back
        assert value("reconciler_job_interval_seconds", job_name="gauge-a") == 300
    finally:
        gauges.forget_all()  # the registry is the process's: leave no series to others
        engine.dispose()


# The gauges' values as the first implementation computed them, job by job from the
# read model's rows and each spec parsed afresh (no memory between refreshes): the
# incremental refresh must export exactly these, whatever moved in between.
def expected_values(
    engine: Engine, essences: EssenceCache, now: datetime
) -> dict[str, tuple[float | None, float | None, float | None]]:
    """{job: (next fire, interval, absent)} by the slow path."""
    with engine.connect() as connection:
        rows = read_job_rows(connection)
    found = {}
    for row in rows:
        essence = essences.get(row.spec_hash)
        spec = JobSpec.model_validate(dict(essence), strict=False) if essence else None
        active = row.status == JobStatus.ACTIVE
        interval: float | None = None
        if spec is not None:
            if isinstance(spec.schedule, IntervalSchedule):
                interval = spec.schedule.interval.total_seconds()
            else:
                upcoming = next_fire_times(spec, after=now, count=2)
                if len(upcoming) == 2:
                    interval = (upcoming[1] - upcoming[0]).total_seconds()
        absent: float | None = None
        if active and spec is not None:
            since = max(filter(None, (as_utc(row.last_run_slot), as_utc(row.updated_at))))
            slots, _ = slot_times(spec, after=since, until=since + timedelta(days=3660), limit=1)
            grace = timedelta(seconds=float(spec.misfire_grace_seconds)) + ABSENT_AFTER_GRACE
            absent = 1.0 if slots and slots[0] < now - grace else 0.0
        found[row.name] = (row.next_run_time if active else None, interval, absent)
    return found


def exported(names: list[str]) -> dict[str, tuple[float | None, float | None, float | None]]:
    return {
        name: (
            value("reconciler_job_next_fire_timestamp_seconds", job_name=name),
            value("reconciler_job_interval_seconds", job_name=name),
            value("reconciler_job_slot_absent", job_name=name),
        )
        for name in names
    }


def test_incremental_gauges_equal_the_slow_path(tmp_path: Path, sqlite_url: str) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    # A herd on one cron, crons of their own, intervals, a one-off, paused jobs, graces.
    documents = [job_yaml(f"herd-{n}", cron="0 * * * *") for n in range(6)]
    documents += [job_yaml(f"cron-{n}", cron=f"*/{n + 2} * * * *") for n in range(4)]
    documents += [
        job_yaml("graceful", cron="0 * * * *", misfire_grace_seconds=600),
        job_yaml("zoned", cron="30 2 * * *", timezone="Europe/Berlin"),
        job_yaml("paused", cron="0 * * * *", paused="true"),
        "name: every-7m\ntask: reconciler.tasks.noop\nschedule: {interval: {minutes: 7}}\n",
        "name: once\ntask: reconciler.tasks.noop\nschedule: {at: 2031-01-01T09:00:00}\n",
    ]
    (jobs / "all.yaml").write_text("---\n".join(documents))
    settings = Settings(database_url=sqlite_url, jobs_dir=jobs, max_delete_fraction=1.0)
    from reconciler.store.migrate import upgrade_database

    upgrade_database(sqlite_url)
    engine = create_sync_engine(sqlite_url)
    caches, gauges = ReconcileCaches(), JobGauges()
    rng = random.Random(15)
    try:
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        with engine.begin() as connection:  # applied a day ago: the ledger's slots are newer
            connection.execute(
                sa.update(scheduled_jobs).values(updated_at=datetime.now(UTC) - timedelta(days=1))
            )
        names = [f"herd-{n}" for n in range(6)] + [f"cron-{n}" for n in range(4)]
        names += ["graceful", "zoned", "paused", "every-7m", "once"]
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        now = start - timedelta(hours=2)
        for step in range(40):
            now += timedelta(seconds=rng.choice([5, 10, 30, 61, 90, 300, 900]))
            if step % 3 == 0:  # a herd: some jobs' newest slot moves to a recent instant
                slot = now - timedelta(seconds=rng.choice([1, 20, 200, 4000]))
                with engine.begin() as connection:
                    for name in rng.sample(names, rng.randint(1, len(names))):
                        connection.execute(
                            sa.insert(job_runs).values(
                                id=f"{name}-{step}",
                                job_name=name,
                                scheduled_time=slot,
                                status="published",
                                task="reconciler.tasks.noop",
                                queue="default",
                                idempotency_key=f"{name}-{step}",
                                updated_at=slot,
                            )
                        )
            if step == 20:  # a spec changes, a job leaves, the inventory moves
                documents[0] = job_yaml("herd-0", cron="15 * * * *")
                (jobs / "all.yaml").write_text("---\n".join(documents[:-2]))
                reconcile_once(engine, settings, trigger="cli", caches=caches)
                names = [name for name in names if name not in ("every-7m", "once")]
            gauges.refresh(engine, caches.essences, caches.memory.triggers, now=now)
            assert exported(names) == expected_values(engine, caches.essences, now), step
        assert value("reconciler_job_interval_seconds", job_name="once") is None
    finally:
        gauges.forget_all()
        engine.dispose()


def test_a_new_spec_clears_a_job_slot_absent(tmp_path: Path, sqlite_url: str) -> None:
    """A job whose slot went absent (1) gets a new spec: its series is made again, and
    the absent gauge says what the new spec says (0: nothing due yet), not the old 1."""
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "late.yaml").write_text(job_yaml("late", cron="0 * * * *"))
    settings = Settings(database_url=sqlite_url, jobs_dir=jobs, max_delete_fraction=1.0)
    from reconciler.store.migrate import upgrade_database

    upgrade_database(sqlite_url)
    engine = create_sync_engine(sqlite_url)
    caches, gauges = ReconcileCaches(), JobGauges()
    try:
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        with engine.begin() as connection:  # applied a day ago, never ran: absent
            connection.execute(
                sa.update(scheduled_jobs).values(updated_at=datetime.now(UTC) - timedelta(days=1))
            )
        gauges.refresh(engine, caches.essences, caches.memory.triggers)
        assert value("reconciler_job_slot_absent", job_name="late") == 1
        (jobs / "late.yaml").write_text(job_yaml("late", cron="15 * * * *"))
        reconcile_once(engine, settings, trigger="cli", caches=caches)  # updated now
        gauges.refresh(engine, caches.essences, caches.memory.triggers)
        now = datetime.now(UTC)
        assert exported(["late"]) == expected_values(engine, caches.essences, now)
        assert value("reconciler_job_slot_absent", job_name="late") == 0
    finally:
        gauges.forget_all()
        engine.dispose()


def many_jobs(tmp_path: Path, db_url: str, count: int) -> tuple[Settings, Engine]:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    documents = [job_yaml(f"many-{n:03}", cron=f"{n % 60} * * * *") for n in range(count)]
    (jobs / "all.yaml").write_text("---\n".join(documents))
    from reconciler.store.migrate import upgrade_database

    upgrade_database(db_url)
    settings = Settings(database_url=db_url, jobs_dir=jobs, max_delete_fraction=1.0)
    return settings, create_sync_engine(db_url)


class SlowChunks(threading.Event):
    """The daemon's wake event, asked after each chunk of the read: each answer takes
    CHUNK_SECONDS, as a chunk of 2,000 rows does under load at 100,000 jobs."""

    CHUNK_SECONDS = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        time.sleep(self.CHUNK_SECONDS)
        return super().is_set()


def test_a_file_event_cuts_a_long_refresh_short(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's refresh reads 60 jobs 1 at a time, 3 s in all; a file event (the
    watcher sets the wake event) 0.3 s in: the refresh returns within a chunk or two,
    no gauge set (each as the previous refresh left it), so the pass that event wakes
    runs at once. Without the event the same refresh completes and sets them all."""
    settings, engine = many_jobs(tmp_path, db_url, 60)
    monkeypatch.setattr(status, "GAUGE_CHUNK", 1)
    caches = ReconcileCaches()
    daemon = Daemon.__new__(Daemon)  # only what _refresh_gauges uses
    daemon._engine, daemon._gauges, daemon._wake = engine, JobGauges(), SlowChunks()
    names = [f"many-{n:03}" for n in range(60)]
    try:
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        assert exported(names) == {name: (None, None, None) for name in names}
        active = value("reconciler_managed_jobs", status="active")
        timer = threading.Timer(0.3, daemon._wake.set)  # JobsWatcher's on_change
        started = time.monotonic()
        timer.start()
        daemon._refresh_gauges(caches)
        took = time.monotonic() - started
        timer.join()
        assert took < 0.3 + 4 * SlowChunks.CHUNK_SECONDS, took
        assert daemon._wake.asked < 15
        assert exported(names) == {name: (None, None, None) for name in names}
        assert value("reconciler_managed_jobs", status="active") == active
        daemon._wake.clear()  # the loop consumed it and ran the pass
        daemon._refresh_gauges(caches)  # the refresh after the pass: complete
        assert daemon._wake.asked > 60
        assert exported(names) == expected_values(engine, caches.essences, datetime.now(UTC))
        assert value("reconciler_managed_jobs", status="active") == 60
    finally:
        daemon._gauges.forget_all()
        engine.dispose()


def test_abandoned_refreshes_leave_the_gauges_as_a_full_refresh(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over random changes (ledger slots, specs, jobs leaving), a refresh abandoned at a
    random chunk changes no gauge, and the next complete one exports what a fresh
    JobGauges (a full refresh, no memory) and the slow path do."""
    settings, engine = many_jobs(tmp_path, db_url, 25)
    monkeypatch.setattr(status, "GAUGE_CHUNK", 3)
    monkeypatch.setattr(gauges_module, "_STOPPING_EVERY", 10)  # asked after 10 and 20 jobs
    caches, gauges = ReconcileCaches(), JobGauges()
    rng = random.Random(6)
    names = [f"many-{n:03}" for n in range(25)]
    documents = [job_yaml(name, cron=f"{n % 60} * * * *") for n, name in enumerate(names)]
    try:
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        with engine.begin() as connection:
            connection.execute(
                sa.update(scheduled_jobs).values(updated_at=datetime.now(UTC) - timedelta(days=1))
            )
        now = datetime.now(UTC) - timedelta(hours=3)
        cut_while_setting = 0
        for step in range(12):
            now += timedelta(seconds=rng.choice([10, 61, 300, 900]))
            slot = now - timedelta(seconds=rng.choice([1, 200, 4000]))
            with engine.begin() as connection:
                for name in rng.sample(names, rng.randint(1, len(names))):
                    connection.execute(
                        sa.insert(job_runs).values(
                            id=f"{name}-{step}",
                            job_name=name,
                            scheduled_time=slot,
                            status="published",
                            task="reconciler.tasks.noop",
                            queue="default",
                            idempotency_key=f"{name}-{step}",
                            updated_at=slot,
                        )
                    )
            if step in (4, 8):  # specs change, jobs leave
                for n in rng.sample(range(len(documents)), 3):
                    documents[n] = job_yaml(names[n], cron=f"{rng.randint(0, 59)} * * * *")
                documents, names = documents[:-2], names[:-2]
                (settings.jobs_dir / "all.yaml").write_text("---\n".join(documents))
                reconcile_once(engine, settings, trigger="cli", caches=caches)
            before = exported(names)
            chunks = -(-len(names) // 3)  # asked after each chunk of 3, then once more
            cut_after = rng.randint(0, chunks + 1)  # the last: while the jobs are set
            asked = iter(range(100))
            done = gauges.refresh(
                engine,
                caches.essences,
                caches.memory.triggers,
                now=now,
                stopping=lambda asked=asked, cut_after=cut_after: next(asked) >= cut_after,
            )
            assert not done, step
            expected = expected_values(engine, caches.essences, now)
            if cut_after <= chunks:  # while reading: nothing set
                assert exported(names) == before, step
            else:  # while setting: each job as before or from this read, in name order
                cut_while_setting += 1
                after = exported(names)
                moved = [name for name in names if after[name] != before[name]]
                assert all(after[name] == expected[name] for name in moved), step
                assert not moved or max(moved) < "many-010", step  # the first 10 jobs
            assert gauges.refresh(
                engine, caches.essences, caches.memory.triggers, now=now, stopping=lambda: False
            )
            incremental = exported(names)
            assert incremental == expected, step
            fresh = JobGauges()
            fresh.refresh(engine, caches.essences, caches.memory.triggers, now=now)
            assert exported(names) == incremental, step
            gauges.refresh(engine, caches.essences, caches.memory.triggers, now=now)
        assert 0 < cut_while_setting < 12
    finally:
        gauges.forget_all()
        engine.dispose()
