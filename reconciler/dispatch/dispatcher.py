"""The Dispatcher: from "APScheduler says this slot is due" to "the broker confirmed it".

Two stages, so that the scheduler loop never waits for the database or the broker:

1. `fire()` runs in APScheduler's executor thread. It checks leadership (fencing),
   computes the fire id and idempotency key, and puts the request on a bounded queue.
   Microseconds; it never blocks (a full queue is the one exception: see `fire`).
2. One pipeline thread drains the queue in batches. Per batch: ONE transaction records
   every slot in the ledger (duplicates and overlaps are decided there, see
   `batch.record_batch`); then the slots to run are published on one channel with
   confirms (`Publisher`); then ONE update marks the confirmed ones 'published' and the
   others 'scheduled' with publish_attempts+1 and a backed-off next_attempt_at, which
   `UnpublishedRetrier` picks up. The ledger row is always committed before its message
   is published, so a slot is never published without a row, and a row left
   'scheduled' (broker down, crash) is re-published later: never silently lost.

Fencing: `fire()` refuses (NotLeaderError) when this process is not leader. A request
accepted just before leadership was lost is still recorded, but not published: the row
is left due for the retrier, which runs only in the current leader. The ledger's unique
slot key is the last line of defence: two processes can never both publish one slot.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from reconciler import metrics
from reconciler.core.fires import FirePayload
from reconciler.dispatch import batch, ledger
from reconciler.dispatch.publisher import Publisher, PublishResult
from reconciler.dispatch.request import FireRequest, make_request
from reconciler.errors import NotLeaderError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Fence(Protocol):
    """What the dispatcher needs of leader election (LeaderElector satisfies it)."""

    def is_leader(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before publish attempt n+1 after n failures: base * 2**(n-1), capped."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> timedelta:
        return timedelta(seconds=min(self.cap, self.base * 2 ** max(failures - 1, 0)))


_STOP = object()
DB_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


class Dispatcher:
    """Records and publishes fires. Start it before the scheduler, stop it after.

    Keyword-only wiring; `clock` is a test seam.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        publisher: Publisher,
        fence: Fence,
        batch_size: int = 500,
        queue_size: int = 100_000,
        backoff: Backoff | None = None,
        publish_grace: float = 30.0,
        clock: Clock = utcnow,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._fence = fence
        self._batch_size = batch_size
        self._queue: queue.Queue[FireRequest | object] = queue.Queue(maxsize=queue_size)
        self._backoff = backoff or Backoff()
        # A published-or-not verdict is due within this long; past it, a row still
        # 'scheduled' belongs to the retrier (this process died, or its publish hung).
        self._publish_grace = timedelta(seconds=publish_grace)
        self._clock = clock
        self._in_flight: set[str] = set()
        # Requests whose publish failed, by id, so the retrier re-sends exactly what was
        # fired (bounded: past it, the retrier rebuilds payloads from the inventory).
        self._unpublished: dict[str, FireRequest] = {}
        self._unpublished_limit = queue_size
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- stage 1: the scheduler's thread -----------------------------------------------
    def fire(self, *, job: str, payload: FirePayload, scheduled_time: datetime) -> FireRequest:
        """Accept one due slot. Returns at once (the ledger write and publish follow on the
        pipeline thread).

        Raises NotLeaderError (and records nothing) unless this process is leader;
        ValueError for a naive scheduled_time. If the queue is full (the pipeline is far
        behind), the row is written here, synchronously, due for the retrier: slower,
        never lost, still never waiting for the broker.
        """
        if not self._fence.is_leader():
            metrics.FIRES.labels(job, "fenced").inc()
            raise NotLeaderError(f"not the leader: slot of {job!r} not fired")
        request = make_request(
            job=job, payload=payload, scheduled_time=scheduled_time, now=self._clock()
        )
        self._enqueue(request)
        return request

    def record_missed(
        self,
        *,
        job: str,
        payload: FirePayload,
        scheduled_times: Iterable[datetime],
        reason: str,
    ) -> None:
        """Record slots that will not run (misfire, coalesced, catch_up_limit) as 'missed'.
        A slot already in the ledger is left as it is. Never raises for leadership: a
        missed slot is a fact worth recording by whoever saw it."""
        now = self._clock()
        for moment in scheduled_times:
            request = make_request(
                job=job,
                payload=payload,
                scheduled_time=moment,
                now=now,
                kind="missed",
                reason=reason,
            )
            metrics.MISSED_SLOTS.labels(job, reason).inc()
            metrics.FIRES.labels(job, "missed").inc()
            self._enqueue(request)

    def republish(self, requests: Sequence[FireRequest], *, timeout: float) -> int:
        """Queue rows already in the ledger for another publish (the retrier's way in).
        Returns how many were queued before `timeout` or a full queue."""
        deadline = time.monotonic() + timeout
        queued = 0
        for request in requests:
            with self._lock:
                if request.id in self._in_flight:
                    continue
                self._in_flight.add(request.id)
            try:
                self._queue.put(request, timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Full:
                self._forget([request])
                break
            queued += 1
        return queued

    def in_flight(self) -> frozenset[str]:
        """Ids queued or being published right now (the retrier leaves them alone)."""
        with self._lock:
            return frozenset(self._in_flight)

    def _enqueue(self, request: FireRequest) -> None:
        with self._lock:
            self._in_flight.add(request.id)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            log.warning("fire queue full: recording %s synchronously", request.id)
            try:
                self._record([request], publishable=False)
                self._remember_unpublished([request], published=())
            finally:
                self._forget([request])

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the pipeline thread. Idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fire-pipeline", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Finish what is queued (record, publish with its deadline), then stop. Call it
        AFTER the scheduler has shut down, so the scheduler's last pass is recorded."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
            if thread.is_alive():
                log.error("fire pipeline did not finish in %.0f s", timeout)
        self._publisher.close()

    # --- stage 2: the pipeline thread -----------------------------------------------------
    def _run(self) -> None:
        while True:
            items = self._take_batch()
            requests = [item for item in items if isinstance(item, FireRequest)]
            if requests:
                self.process(requests)
            if len(requests) < len(items):
                return

    def _take_batch(self) -> list[FireRequest | object]:
        items = [self._queue.get()]
        while len(items) < self._batch_size and items[-1] is not _STOP:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def process(self, requests: Sequence[FireRequest]) -> None:
        """Record, publish and mark one batch. Called by the pipeline thread (a test seam
        too). Never raises: failures leave rows for the retrier and are logged."""
        try:
            fresh = [r for r in requests if not r.recorded]
            again = [r for r in requests if r.recorded]
            publishable = self._fence.is_leader()
            to_publish = self._record_with_retries(fresh, publishable=publishable)
            if publishable:
                self._publish(to_publish + again)
        except Exception:  # a bug or a dead database must not kill the pipeline
            log.exception("fire pipeline: a batch of %d failed", len(requests))
        finally:
            self._forget(requests)

    def _record_with_retries(
        self, requests: Sequence[FireRequest], *, publishable: bool
    ) -> list[FireRequest]:
        # The database blinking must not cost the batch: these slots exist nowhere else
        # (APScheduler has already moved next_run_time on). A few seconds of retries,
        # then the error propagates and is logged with the batch size.
        for delay in DB_RETRY_DELAYS:
            try:
                return self._record(requests, publishable=publishable)
            except OperationalError as error:
                log.warning("ledger write failed (retry in %.1f s): %s", delay, error)
                time.sleep(delay)
        return self._record(requests, publishable=publishable)

    def _record(self, requests: Sequence[FireRequest], *, publishable: bool) -> list[FireRequest]:
        if not requests:
            return []
        now = self._clock()
        # Not publishable (fenced): the rows are due for the leader's retrier at once.
        retry_at = now + self._publish_grace if publishable else now
        with self._engine.begin() as connection:
            outcome = batch.record_batch(connection, requests, now=now, retry_at=retry_at)
        _count_outcome(outcome)
        return outcome.to_publish if publishable else []

    def _publish(self, requests: Sequence[FireRequest]) -> None:
        if not requests:
            return
        result = self._publisher.publish(requests)
        now = self._clock()
        failed = {r.id: r for r in requests if r.id not in result.confirmed}
        retry_at = {key: now + self._backoff.delay(r.attempts + 1) for key, r in failed.items()}
        with self._engine.begin() as connection:
            ledger.mark_published(connection, result.confirmed, now=now)
            ledger.mark_unpublished(connection, retry_at, now=now)
        self._remember_unpublished(failed.values(), published=result.confirmed)
        _count_publish(requests, result, now=now)

    def _remember_unpublished(
        self, failed: Iterable[FireRequest], *, published: Iterable[str]
    ) -> None:
        with self._lock:
            for key in published:
                self._unpublished.pop(key, None)
            for request in failed:
                if len(self._unpublished) < self._unpublished_limit:
                    self._unpublished[request.id] = request

    def unpublished_request(self, fire_id: str) -> FireRequest | None:
        """The request as fired, if its publish failed in this process (else None)."""
        with self._lock:
            return self._unpublished.get(fire_id)

    def _forget(self, requests: Iterable[FireRequest]) -> None:
        with self._lock:
            self._in_flight.difference_update(r.id for r in requests)


def _count_outcome(outcome: batch.BatchOutcome) -> None:
    for request in outcome.duplicates:
        metrics.DUPLICATE_FIRES.labels(request.job).inc()
        metrics.FIRES.labels(request.job, "duplicate").inc()
    for request in outcome.overlaps:
        metrics.MISSED_SLOTS.labels(request.job, "overlap").inc()
        metrics.FIRES.labels(request.job, "skipped_overlap").inc()


def _count_publish(
    requests: Sequence[FireRequest], result: PublishResult, *, now: datetime
) -> None:
    for request in requests:
        if request.id in result.confirmed:
            metrics.FIRES.labels(request.job, "published").inc()
            metrics.FIRE_LATENESS.observe((now - request.slot).total_seconds())
        else:
            metrics.FIRES.labels(request.job, "unpublished").inc()
            metrics.PUBLISH_FAILURES.inc()
    if result.error:
        log.warning(
            "%d of %d fires unpublished: %s",
            len(requests) - len(result.confirmed),
            len(requests),
            result.error,
        )
