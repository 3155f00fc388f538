"""A leader whose APScheduler thread died gives the lead up (Daemon._give_up).

APScheduler 3 calls the job store's `remove_job` (after a one-off job's fire), its
`update_job` and triggers outside any try in its pass: an exception there ends the
thread without a word (`scheduler.running` stays true) while the process keeps the lock
and fires nothing. Here the fault is real: a one-off job fires (inline, DebugExecutor)
and takes the scheduler's table away (renames it, as a database restored without it
would), so the store's DELETE of the fired job raises in the scheduler's thread. Both
databases."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from reconciler import metrics
from reconciler.engine.daemon import Daemon, FiringRuntime
from reconciler.settings import Settings
from reconciler.store import jobstore
from reconciler.store.db import create_sync_engine
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import apscheduler_jobs

from .test_jobstore_flush import own

pytestmark = pytest.mark.services

TABLE = apscheduler_jobs.name


def take_the_table_away(*, database_url: str) -> None:
    """The one-off job's callable: the scheduler's table goes while it fires."""
    engine = create_sync_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_away"))
    finally:
        engine.dispose()


# The scheduler thread's death is the point: pytest's warning about it is expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_scheduler_thread_gives_the_lead_up(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    when = {"run_date": datetime.now(UTC) + timedelta(seconds=1)}
    with leading(db_url, tmp_path, "date", when) as (daemon, runtime, loop):
        with caplog.at_level(logging.ERROR, logger="reconciler.engine.daemon"):
            loop.start()
            loop.join(20)  # the fire comes in 1 s; the loop turns every 0.05 s
            assert not loop.is_alive(), "the loop kept leading without a scheduler"
        assert not runtime.scheduler_alive()
        assert runtime.scheduler.running  # APScheduler says nothing
        assert daemon.failure == "the scheduler's thread died while this process led"
        assert "giving up the leadership" in caplog.text
        assert metrics.SCHEDULER_RUNNING._value.get() == 0


def test_a_write_back_failing_for_good_gives_the_lead_up(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The scheduler's thread stays alive, but every pass fails to write back (its
    flush comes first) and fires nothing: the store gives up after GIVE_UP_SECONDS and
    the loop hands the lead over as for a dead thread. An interval job takes the table
    away as it fires (inline), so the write-back of its fire fails on every retry."""
    monkeypatch.setattr(jobstore, "GIVE_UP_SECONDS", 1.0)
    with leading(db_url, tmp_path, "interval", {"seconds": 1}) as (daemon, runtime, loop):
        with caplog.at_level(logging.ERROR):
            loop.start()
            loop.join(30)  # fire in 1 s, give up 1 s and 3 attempts (1 s apart) later
            assert not loop.is_alive(), "the loop kept leading a scheduler that fires nothing"
        assert runtime.scheduler_alive()  # the thread never died: only the store's check
        assert daemon.failure is not None
        assert "could not write back 1 fired jobs" in daemon.failure
        assert "giving up the leadership" in caplog.text
        assert metrics.SCHEDULER_RUNNING._value.get() == 0


@contextmanager
def leading(
    db_url: str, tmp_path: Path, trigger: str, when: dict[str, Any]
) -> Iterator[tuple[Daemon, FiringRuntime, threading.Thread]]:
    """A leader's loop (not started) over a real scheduler (inline executor) and store
    whose one job takes the table away as it fires. Afterwards: the loop stopped, then
    the scheduler shut down, as `_lead` does next (a failing write-back only logged)."""
    upgrade_database(db_url)
    engine = create_sync_engine(db_url)
    own(engine, ["the-job"])
    store = OwnedJobStore(engine=engine)
    scheduler = BackgroundScheduler(
        jobstores={"default": store}, executors={"default": DebugExecutor()}, timezone=UTC
    )
    scheduler.add_job(
        take_the_table_away, trigger, id="the-job", kwargs={"database_url": db_url}, **when
    )
    scheduler.start()
    metrics.SCHEDULER_RUNNING.set(1)  # as start_firing does
    runtime = FiringRuntime(scheduler, store, service=None)  # type: ignore[arg-type]
    daemon = loop_daemon(tmp_path)
    stop = threading.Event()
    loop = threading.Thread(target=daemon._loop, args=(stop, object(), runtime), daemon=True)
    try:
        yield daemon, runtime, loop
    finally:
        stop.set()
        if loop.ident is not None:
            loop.join(5)
        scheduler.shutdown(wait=True)
        engine.dispose()


def loop_daemon(tmp_path: Path) -> Daemon:
    """A Daemon whose loop runs without a database: passes and gauges stubbed (the loop
    only has to turn), leading throughout."""
    settings = Settings(
        jobs_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path}/unused.db",
        resync_interval=3600,
        poll_interval=0.05,
    )
    elector: Any = SimpleNamespace(is_leader=lambda: True, instance_id="test", epoch=1)
    daemon = Daemon(settings=settings, engine=None, elector=elector, make_service=lambda: None)  # type: ignore[arg-type]
    daemon._pass = lambda *args: True  # type: ignore[method-assign]
    daemon._refresh_gauges = lambda caches: None  # type: ignore[method-assign]
    return daemon
