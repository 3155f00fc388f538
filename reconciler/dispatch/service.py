"""FiringService: the dispatch pieces, built from settings and started/stopped in order.

For the daemon, per leadership term:

    service = FiringService(engine=engine, settings=settings, fence=elector)
    service.start()                                   # dispatcher, fire_job slot, retrier
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": service.executor()},    # a NEW executor per scheduler
        timezone=UTC,
    )
    service.attach(scheduler)                          # records misfired slots
    scheduler.start()
    ...
    scheduler.shutdown()   # FIRST: its last pass still fires, through the running dispatcher
    service.stop()         # THEN: retrier, drain + publish what is queued, uninstall

Why this order: BackgroundScheduler.shutdown() runs one more scheduling pass after its
executors stopped (APScheduler 3's BackgroundScheduler; AsyncIOScheduler does not).
FireExecutor runs that pass's fires inline, and they reach the
Dispatcher only if it is still running and installed. Stopping the dispatcher first
would turn those slots into rows written synchronously (still not lost, but slower).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED
from sqlalchemy.engine import Engine

from reconciler.dispatch.dispatcher import Dispatcher, Fence
from reconciler.dispatch.executor import STALE_FIRES, FireExecutor
from reconciler.dispatch.fire import install_dispatcher
from reconciler.dispatch.missed import MissedRunRecorder, scheduler_payload_lookup
from reconciler.dispatch.publisher import Publisher
from reconciler.dispatch.retrier import UnpublishedRetrier
from reconciler.settings import Settings

# Broker connections (and publisher threads) of the firing pipeline: while one waits
# for its batch's confirms, the other publishes the next batch (Publisher doc).
PUBLISH_CONNECTIONS = 2
# A scheduler pass that fired at least this many slots (one ledger batch) writes its
# jobs back only once their fires are published: see `FiringService.before_write_back`.
BURST = 1000


class FiringService:
    """Owns one Dispatcher, its Publisher and an UnpublishedRetrier."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        fence: Fence,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        publisher = Publisher(
            broker_url=settings.broker_url,
            timeout=settings.publish_timeout,
            transport_options=transport_options,
            connections=PUBLISH_CONNECTIONS,
        )
        self.dispatcher = Dispatcher(engine=engine, publisher=publisher, fence=fence)
        self.retrier = UnpublishedRetrier(
            engine=engine,
            dispatcher=self.dispatcher,
            fence=fence,
            interval=1.0,
            # A worker renews its claims every lease / 3: a whole lease more without a
            # renewal is a worker dead or cut off (README "Failure bounds").
            reap_grace=timedelta(seconds=settings.idempotency_lease_seconds),
        )

    def executor(self) -> FireExecutor:
        """A fresh FireExecutor (one per scheduler)."""
        return FireExecutor(max_catch_up_runs=self.settings.max_catch_up_runs)

    def before_write_back(self, fired: int) -> None:
        """The scheduler's job store calls this before writing back the `fired` jobs of
        a pass. After a burst it first waits until the burst is published (at most
        `publish_timeout`): written back at once, 10,000 jobs' states (one UPDATE of
        ~10 MB, pickled in this process) competed with recording and publishing those
        very fires for the GIL, PostgreSQL and the disk, the broker's fsyncs included;
        in the `:00` herd the ledger batches took twice as long. The scheduler fires
        nothing meanwhile (it is in its pass), and the jobs are due again only once
        written back, so a slot is still fired once; a crash meanwhile leaves the
        burst's slots in the ledger, where the next leader's fires of them (due when
        it took over) are refused and handed over (Dispatcher.take_over)."""
        if fired >= BURST:
            self.dispatcher.wait_settled(timeout=self.settings.publish_timeout)

    def attach(self, scheduler: Any) -> None:
        """Record the slots `scheduler` drops as misfired."""
        recorder = MissedRunRecorder(
            dispatcher=self.dispatcher, lookup_payload=scheduler_payload_lookup(scheduler)
        )
        scheduler.add_listener(recorder, EVENT_JOB_MISSED)

    def start(self) -> None:
        """Start before the scheduler: dispatcher, then the fire_job slot, then the retrier."""
        self.dispatcher.start()
        install_dispatcher(self.dispatcher)
        self.retrier.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop after the scheduler: retrier, dispatcher (drains its queue), then the slot."""
        self.retrier.stop()
        self.dispatcher.stop(timeout=timeout)
        install_dispatcher(None)
        STALE_FIRES.flush()
