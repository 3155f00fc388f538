"""FireExecutor inside a real APScheduler 3: scheduled_time reaches the callable, one call
per run time, catch-up bounded, coalesced and misfired slots recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.core.fires import FIRE_CALLABLE, fire_id
from reconciler.dispatch.dispatcher import Dispatcher
from reconciler.dispatch.executor import FireExecutor
from reconciler.dispatch.fire import install_dispatcher
from reconciler.dispatch.missed import MissedRunRecorder, scheduler_payload_lookup
from reconciler.dispatch.publisher import Publisher

from .conftest import Broker
from .helpers import Fence, drain_queue, make_payload, make_spec, runs, wait_until


class Calls:
    """A job function that records the scheduled_time of every call, and a MissedSink."""

    def __init__(self) -> None:
        self.fired: list[datetime] = []
        self.missed: list[tuple[str, str, list[datetime]]] = []
        self.event = threading.Event()

    def __call__(
        self, *, job: str, payload: object, scheduled_time: datetime | None = None
    ) -> None:
        assert scheduled_time is not None
        self.fired.append(scheduled_time)
        self.event.set()

    def sink(self, job: str, payload: object, slots: Sequence[datetime], reason: str) -> None:
        self.missed.append((job, reason, list(slots)))


@pytest.fixture
def calls() -> Calls:
    return Calls()


def scheduler_with(executor: FireExecutor, **options: object) -> BackgroundScheduler:
    return BackgroundScheduler(executors={"default": executor}, timezone=UTC, **options)


def past_slots(seconds_ago: int, every: int) -> tuple[datetime, IntervalTrigger]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds_ago)
    return start, IntervalTrigger(seconds=every, start_date=start, timezone=UTC)


def test_catch_up_is_bounded_and_each_run_gets_its_own_call(calls: Calls) -> None:
    scheduler = scheduler_with(FireExecutor(max_catch_up_runs=5, record_missed=calls.sink))
    start, trigger = past_slots(30, 1)
    scheduler.add_job(
        calls,
        trigger,
        id="sweep",
        kwargs={"job": "sweep", "payload": {}},
        coalesce=False,
        misfire_grace_time=3600,
        next_run_time=start,
    )
    scheduler.start()
    try:
        wait_until(lambda: len(calls.fired) >= 5, timeout=5)
    finally:
        scheduler.shutdown()
    (job, reason, dropped), *_ = calls.missed
    assert (job, reason) == ("sweep", "catch_up_limit")
    catch_up = calls.fired[:5]
    assert dropped[0] == start and len(dropped) + 5 >= 30
    assert catch_up == [dropped[-1] + timedelta(seconds=n) for n in range(1, 6)]


def test_coalesced_slots_are_recorded(calls: Calls) -> None:
    scheduler = scheduler_with(FireExecutor(max_catch_up_runs=5, record_missed=calls.sink))
    start, trigger = past_slots(10, 1)
    scheduler.add_job(
        calls,
        trigger,
        id="sweep",
        kwargs={"job": "sweep", "payload": {}},
        coalesce=True,
        misfire_grace_time=3600,
        next_run_time=start,
    )
    scheduler.start()
    try:
        wait_until(lambda: calls.fired, timeout=5)
    finally:
        scheduler.shutdown()
    (job, reason, coalesced), *_ = calls.missed
    assert (job, reason) == ("sweep", "coalesced")
    assert coalesced == [start + timedelta(seconds=n) for n in range(len(coalesced))]
    assert calls.fired[0] == coalesced[-1] + timedelta(seconds=1)


def test_after_shutdown_a_submission_still_runs(calls: Calls) -> None:
    executor = FireExecutor(max_catch_up_runs=5, record_missed=calls.sink)
    scheduler = scheduler_with(executor)
    slot, trigger = past_slots(0, 60)
    scheduler.add_job(calls, trigger, id="sweep", kwargs={"job": "sweep", "payload": {}})
    scheduler.start(paused=True)
    job = scheduler.get_job("sweep")
    executor.shutdown()
    executor.submit_job(job, [slot])  # what BackgroundScheduler's last pass does
    assert calls.fired == [slot]
    scheduler.shutdown()


@pytest.fixture
def dispatcher(engine: sa.Engine, broker: Broker) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(
        engine=engine, publisher=Publisher(broker_url=broker.url, timeout=2), fence=Fence(True)
    )
    dispatcher.start()
    previous = install_dispatcher(dispatcher)
    yield dispatcher
    install_dispatcher(previous)
    dispatcher.stop()


@pytest.mark.services
def test_fire_job_every_second_from_the_sqlalchemy_store(
    engine: sa.Engine, ledger_url: str, broker: Broker, dispatcher: Dispatcher
) -> None:
    store = SQLAlchemyJobStore(engine=engine)  # the migrated apscheduler_jobs table
    scheduler = scheduler_with(FireExecutor(max_catch_up_runs=10), jobstores={"default": store})
    # No worker runs them: allow a few "concurrent" runs, or overlap skips slots 2 and 3.
    payload = make_payload(make_spec("sweep", queue=broker.queue, max_concurrent_runs=10))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    scheduler.add_job(
        FIRE_CALLABLE,
        IntervalTrigger(seconds=1, start_date=start, timezone=UTC),
        id="sweep",
        kwargs={"job": "sweep", "payload": payload},
        misfire_grace_time=30,
    )
    scheduler.start()
    try:
        wait_until(
            lambda: len([r for r in runs(engine) if r.status == "published"]) >= 3, timeout=10
        )
    finally:
        scheduler.shutdown()
    rows = runs(engine, "sweep")[:3]
    slots = [row.scheduled_time for row in rows]
    # Consecutive slots of the trigger (the first may be later than `start` on a busy
    # machine: a start_date already past when the scheduler starts is not caught up).
    assert slots == [slots[0] + timedelta(seconds=n) for n in range(3)]
    assert slots[0] >= start and slots[0].microsecond == 0
    assert [row.id for row in rows] == [fire_id("sweep", slot) for slot in slots]
    assert all(0 <= row.lateness_seconds < 5 for row in rows)
    published = {
        m.headers["id"]: m.headers["scheduled_time"] for m in drain_queue(broker.url, broker.queue)
    }
    assert published[rows[0].id] == slots[0].isoformat()


@pytest.mark.services
def test_a_misfired_slot_is_recorded_missed(engine: sa.Engine, dispatcher: Dispatcher) -> None:
    scheduler = scheduler_with(FireExecutor(max_catch_up_runs=10))
    scheduler.add_listener(
        MissedRunRecorder(
            dispatcher=dispatcher, lookup_payload=scheduler_payload_lookup(scheduler)
        ),
        EVENT_JOB_MISSED,
    )
    start, trigger = past_slots(90, 60)  # slots at -90 s and -30 s: both past a 1 s grace
    payload = make_payload(make_spec("sweep"))
    scheduler.add_job(
        FIRE_CALLABLE,
        trigger,
        id="sweep",
        next_run_time=start,
        kwargs={"job": "sweep", "payload": payload},
        misfire_grace_time=1,
    )
    scheduler.start()
    try:
        wait_until(lambda: len(runs(engine, "sweep")) == 2, timeout=5)
    finally:
        scheduler.shutdown()
    assert [(r.scheduled_time, r.status, r.reason) for r in runs(engine, "sweep")] == [
        (start, "missed", "coalesced"),
        (start + timedelta(seconds=60), "missed", "misfire"),
    ]


def test_stale_fires_are_one_warning_line_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    """A fenced process's fires (NotLeaderError) are counted and logged as one WARNING
    line per interval, never a traceback at ERROR each (issue 17)."""
    import logging

    from reconciler.dispatch.executor import STALE_FIRES, StaleFireLog
    from reconciler.errors import NotLeaderError

    def fenced(*, job: str, payload: object, scheduled_time: datetime | None = None) -> None:
        raise NotLeaderError(f"not the leader: slot of {job!r} not fired")

    STALE_FIRES.flush()  # a clean window, whatever ran before in this process
    executor = FireExecutor(max_catch_up_runs=10, record_missed=Calls().sink)
    scheduler = scheduler_with(executor)
    start = datetime.now(UTC) + timedelta(seconds=1)
    for n in range(5):
        scheduler.add_job(
            fenced, "date", run_date=start, kwargs={"job": f"j{n}", "payload": {}}, id=f"j{n}"
        )
    with caplog.at_level(logging.DEBUG):
        scheduler.start()
        try:
            wait_until(lambda: not scheduler.get_jobs(), timeout=15)
            time.sleep(0.5)
        finally:
            scheduler.shutdown(wait=True)
        STALE_FIRES.flush()  # as FiringService.stop does
    stale = [r for r in caplog.records if "stale fire" in r.getMessage()]
    assert [r.levelno for r in stale] == [logging.WARNING] * 2  # the first, then the count
    assert stale[0].getMessage().startswith("refused 1 stale fire(s): not the leader")
    assert stale[1].getMessage().startswith("refused 4 more stale fire(s)")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    log = StaleFireLog(every=0.0)
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        for _ in range(3):
            log.refused("x")
    assert len(caplog.records) == 3  # no interval: a line each
