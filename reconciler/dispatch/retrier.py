"""UnpublishedRetrier: ledger rows left 'scheduled' are published again until confirmed.

A row stays 'scheduled' when its publish failed (broker down, timeout, nack) or when
the process died between writing it and marking it published. Every `interval` seconds
the LEADER's retrier:

1. expires rows whose `expires_at` passed ('expired', reason: not published before it
   expired) — a late task is worse than none when the job said so;
2. takes the due rows (next_attempt_at passed), oldest slot first, minus those this
   process is publishing right now, and hands them to the Dispatcher's pipeline, which
   publishes them with confirms and sets the next backed-off attempt on failure;
3. closes as lost the `started` runs whose claim lease passed more than `reap_grace`
   ago (their worker died, or was cut off from the database that long without its
   writes coming back): `failed` with RunReason.LOST, so that overlap is decided on live
   runs only. The holder's own report still replaces it if it comes (worker/claims.py);
4. sets the UNPUBLISHED_FIRES gauge.

Its first pass of a leadership term runs at once and makes every row still 'scheduled'
due now: rows a previous leader recorded but could not publish (it stepped down in
between) would otherwise wait out their publish grace (30 s) or backoff.

The message is rebuilt from what was fired when this process fired it; after a crash
(the next leader's retrier) from the job's current spec in the inventory, with the
fire's own id, idempotency key and revision. A row whose job is no longer managed is
closed as 'expired' (reason: job no longer managed). Re-publishing is safe: the fire id
is the task id, and the worker runs one fire id once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine

from reconciler import metrics
from reconciler.core.fires import FirePayload, fire_payload
from reconciler.core.moments import as_utc
from reconciler.core.vocabulary import FireOutcome, MissReason, RunReason, RunStatus
from reconciler.dispatch.dispatcher import Clock, Dispatcher, Fence, utcnow
from reconciler.dispatch.request import FireRequest
from reconciler.logs import job_extra
from reconciler.spec.model import JobSpec
from reconciler.store import ledger
from reconciler.store.inventory import read_applied_specs
from reconciler.store.sessions import bound_idle, unreachable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPass:
    """What one pass did: rows expired, rows handed to the pipeline, rows closed."""

    expired: int = 0
    queued: int = 0
    closed: int = 0


class UnpublishedRetrier:
    """Start it with the dispatcher (after it), stop it before the dispatcher."""

    def __init__(
        self,
        *,
        engine: Engine,
        dispatcher: Dispatcher,
        fence: Fence,
        interval: float = 1.0,
        batch_size: int = 500,
        reap_grace: timedelta = timedelta(seconds=30),
        clock: Clock = utcnow,
    ) -> None:
        self._engine = engine
        self._dispatcher = dispatcher
        self._fence = fence
        self._interval = interval
        self._batch_size = batch_size
        self._clock = clock
        self._reap_grace = reap_grace
        self._term_started = False  # the first pass as leader has run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fire-retrier", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        warned_at: float | None = None
        while True:
            try:
                self.run_once()
                warned_at = None
            except Exception as error:  # keep retrying: the next pass may succeed
                if not unreachable(error):
                    log.exception("unpublished-fire retrier pass failed")
                elif warned_at is None or time.monotonic() - warned_at >= 60:
                    # The database is away (or ended a frozen pass): one line a minute.
                    warned_at = time.monotonic()
                    log.warning(
                        "unpublished-fire retrier: database unavailable: %s",
                        getattr(error, "orig", error),
                    )
            if self._stop.wait(self._interval):
                return

    def run_once(self) -> RetryPass:
        """One pass (see the module doc). Does nothing but the gauge unless leader."""
        result = RetryPass()
        if self._fence.is_leader():
            result = self._retry(self._clock())
        with self._engine.connect() as connection:
            metrics.UNPUBLISHED_FIRES.set(ledger.count_unpublished(connection))
        return result

    def _retry(self, now: datetime) -> RetryPass:
        with self._engine.begin() as connection:
            # A retrier frozen inside this pass holds the rows it updated, which the next
            # leader's pipeline and retrier write too (store.sessions).
            bound_idle(connection)
            if not self._term_started:
                ledger.make_unpublished_due(connection, now=now)
            lost = ledger.reap_lost(connection, now=now, grace=self._reap_grace)
            expired = ledger.expire_unpublished(connection, now=now)
            rows = ledger.due_unpublished(
                connection, now=now, limit=self._batch_size, exclude=self._dispatcher.in_flight()
            )
            requests, orphans = self._requests_for(connection, rows)
            ledger.set_status(
                connection, orphans, status=RunStatus.EXPIRED, reason=RunReason.UNMANAGED, now=now
            )
        self._term_started = True
        if lost:
            metrics.LOST_RUNS.inc(len(lost))
            log.warning(
                "%d started runs closed as lost (no lease renewal for %.0f s): %s",
                len(lost),
                self._reap_grace.total_seconds(),
                ", ".join(sorted(set(lost))[:10]),
            )
        for job in expired:
            metrics.FIRES.labels(job, FireOutcome.EXPIRED).inc()
            metrics.MISSED_SLOTS.labels(job, MissReason.EXPIRED).inc()
        queued = self._dispatcher.republish(requests, timeout=self._interval)
        return RetryPass(expired=len(expired), queued=queued, closed=len(orphans))

    def _requests_for(
        self, connection: Connection, rows: Sequence[Any]
    ) -> tuple[list[FireRequest], set[str]]:
        remembered = {row.id: self._dispatcher.unpublished_request(row.id) for row in rows}
        missing = {row.job_name for row in rows if remembered[row.id] is None}
        payloads = _inventory_payloads(connection, missing)
        requests, orphans = [], set()
        for row in rows:
            known = remembered[row.id]
            if known is None:
                payload = payloads.get(row.job_name)
                if payload is None:
                    orphans.add(row.id)
                    continue
                known = _request_from_row(row, {**payload, "revision": row.revision})
            requests.append(_with_attempts(known, row.publish_attempts))
        return requests, orphans


def _with_attempts(request: FireRequest, attempts: int) -> FireRequest:
    return FireRequest(
        id=request.id,
        job=request.job,
        slot=request.slot,
        payload=request.payload,
        idempotency_key=request.idempotency_key,
        fired_at=request.fired_at,
        recorded=True,
        attempts=attempts,
    )


def _request_from_row(row: Any, payload: FirePayload) -> FireRequest:
    return FireRequest(
        id=row.id,
        job=row.job_name,
        slot=as_utc(row.scheduled_time),
        payload=payload,
        idempotency_key=row.idempotency_key,
        fired_at=as_utc(row.fired_at or row.scheduled_time),
    )


def _inventory_payloads(connection: Connection, jobs: Collection[str]) -> dict[str, FirePayload]:
    """Fire payloads of managed jobs, from their applied spec. Unreadable specs are left
    out (their rows are closed) with an error logged."""
    payloads: dict[str, FirePayload] = {}
    for name, spec, spec_hash in read_applied_specs(connection, jobs):
        try:
            payloads[name] = fire_payload(
                JobSpec.model_validate(spec), spec_hash=spec_hash, revision=None
            )
        except ValidationError as error:
            log.error(
                "inventory spec of %r unreadable, its unpublished fires close: %s",
                name,
                error,
                extra=job_extra(name),
            )
    return payloads
