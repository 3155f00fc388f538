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
from reconciler.dispatch.fire import current_dispatcher
from reconciler.dispatch.service import FiringService
from reconciler.errors import NotLeaderError
from reconciler.settings import load_settings

from .conftest import Broker
from .helpers import Fence, drain_queue, make_payload, make_spec, runs

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
