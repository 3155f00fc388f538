"""FiringService wired like the daemon: the fire of BackgroundScheduler's last pass (the
one that happens after shutdown() stopped the executors) is published, not lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.core.fires import FIRE_CALLABLE, fire_id
from reconciler.dispatch import service as service_module
from reconciler.dispatch.fire import current_dispatcher
from reconciler.dispatch.service import FiringService
from reconciler.errors import NotLeaderError
from reconciler.settings import load_settings
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.tables import apscheduler_jobs

from .conftest import Broker
from .helpers import (
    Fence,
    add_to_inventory,
    drain_queue,
    make_payload,
    make_spec,
    runs,
    wait_until,
)

pytestmark = pytest.mark.services


def test_the_shutdown_pass_fire_is_published(engine: sa.Engine, ledger_url: str, broker: Broker):
    settings = load_settings(database_url=ledger_url, broker_url=broker.url, publish_timeout=2)
    service = FiringService(engine=engine, settings=settings, fence=Fence(True))
    service.start()
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": service.executor()},
        timezone=UTC,
    )
    service.attach(scheduler)
    scheduler.start(paused=True)  # nothing fires while paused...
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    payload = make_payload(make_spec("sweep", queue=broker.queue))
    scheduler.add_job(
        FIRE_CALLABLE,
        IntervalTrigger(hours=1, start_date=slot, timezone=UTC),
        id="sweep",
        kwargs={"job": "sweep", "payload": payload},
        next_run_time=slot,
        misfire_grace_time=60,
    )
    scheduler.shutdown()  # ...but shutdown's extra pass finds the slot due and fires it
    service.stop()
    assert [(r.id, r.status) for r in runs(engine, "sweep")] == [
        (fire_id("sweep", slot), "published")
    ]
    assert [m.headers["id"] for m in drain_queue(broker.url, broker.queue)] == [
        fire_id("sweep", slot)
    ]
    with pytest.raises(NotLeaderError):
        current_dispatcher()  # uninstalled


def test_a_burst_is_published_before_its_jobs_are_written_back(
    engine: sa.Engine, ledger_url: str, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's wiring: a pass that fired a burst (BURST slots or more; 5 here) waits
    for their publish before the job store writes the jobs back."""
    monkeypatch.setattr(service_module, "BURST", 5)
    settings = load_settings(database_url=ledger_url, broker_url=broker.url, publish_timeout=5)
    service = FiringService(engine=engine, settings=settings, fence=Fence(True))
    names = [f"sweep-{n}" for n in range(5)]
    for name in names:
        add_to_inventory(engine, make_spec(name, queue=broker.queue))
    seen: list[tuple[int, list[str], list[float]]] = []

    def before_write_back(fired: int) -> None:
        service.before_write_back(fired)
        with engine.connect() as connection:  # what a crash right now would leave
            statuses = [r.status for r in runs(engine)]
            stored = connection.execute(sa.select(apscheduler_jobs.c.next_run_time)).scalars()
            seen.append((fired, statuses, list(stored)))

    service.start()
    store = OwnedJobStore(engine=engine, before_write_back=before_write_back)
    scheduler = BackgroundScheduler(
        jobstores={"default": store}, executors={"default": service.executor()}, timezone=UTC
    )
    scheduler.start(paused=True)
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    for name in names:
        scheduler.add_job(
            FIRE_CALLABLE,
            IntervalTrigger(hours=1, start_date=slot, timezone=UTC),
            id=name,
            kwargs={"job": name, "payload": make_payload(make_spec(name, queue=broker.queue))},
            next_run_time=slot,
            misfire_grace_time=60,
        )
    try:
        scheduler.resume()
        wait_until(lambda: bool(seen), timeout=10)
    finally:
        scheduler.shutdown()
        service.stop()
    fired, statuses, stored = seen[0]
    assert fired == 5
    assert statuses == ["published"] * 5  # every fire of the burst published...
    assert stored == [slot.timestamp()] * 5  # ...before any job was written back
    with engine.connect() as connection:
        written = connection.execute(sa.select(apscheduler_jobs.c.next_run_time)).scalars()
        assert set(written) == {(slot + timedelta(hours=1)).timestamp()}
