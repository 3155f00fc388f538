"""The Dispatcher: from "APScheduler says this slot is due" to "the broker confirmed it".

Two stages, so that the scheduler loop never waits for the database or the broker:

1. `fire()` runs in APScheduler's executor thread. It checks leadership (fencing),
   computes the fire id and idempotency key, and puts the request on a bounded queue.
   Microseconds; it never blocks (a full queue is the one exception: see `fire`).
2. The pipeline threads. The recorder drains the queue in batches; per batch ONE
   transaction records every slot in the ledger (duplicates and overlaps are decided
   there, see `batch.record_batch`). Once committed, the batch goes to a publisher
   thread (one per broker connection of the `Publisher`: while one waits for its
   batch's confirms, another publishes the next), which publishes the slots to run
   with confirms, then
   ONE update marks the confirmed ones 'published' and the others 'scheduled' with
   publish_attempts+1 and a backed-off next_attempt_at, which `UnpublishedRetrier`
   picks up. The ledger row is always committed before its message
   is published, so a slot is never published without a row, and a row left
   'scheduled' (broker down, crash) is re-published later: never silently lost.

Fencing: `fire()` refuses (NotLeaderError) when this process is not leader. A request
accepted just before leadership was lost is still recorded, but not published: the row
is left due for the retrier, which runs only in the current leader; if the next leader
recorded the slot first (it took over while this process was paused between accepting
and recording), the slot is handed over, not counted as a duplicate (batch.record_batch).
In the other order (the woken process records first), the next leader's fire of the
slot finds it recorded: a slot due when that leader took over is INHERITED (`take_over`),
and handed over too.
The ledger's unique slot key is the last line of defence: a slot is recorded once, only
the process whose insert won publishes it fresh, and any re-publish (retrier) carries
the same task id, which the worker runs once.

A leader frozen INSIDE a ledger transaction (after its INSERT, before its COMMIT) holds
the new rows' locks, and the next leader's record of the same slots waits for its
outcome (an INSERT ... ON CONFLICT does): before the bound, for as long as the freeze
lasted, publishing nothing. So every ledger transaction here (the record, the mark, the
retrier's pass) bounds its silence on PostgreSQL (store.sessions.bound_idle): the server
ends it after IDLE_SECONDS. The woken process's commit fails on the lost session, and
its retry (`_record_with_retries`) records the batch late: a slot the next leader
recorded meanwhile is handed over, any other is recorded due at once for the leader's
retrier (tests/dispatch/test_frozen_record.py).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from reconciler import metrics
from reconciler.core.fires import FirePayload
from reconciler.core.moments import rfc3339
from reconciler.core.vocabulary import FireOutcome, MissReason
from reconciler.dispatch import batch
from reconciler.dispatch.publisher import Pipeline, Publisher, PublishResult
from reconciler.dispatch.request import FireRequest, make_request
from reconciler.errors import NotLeaderError
from reconciler.logs import job_extra
from reconciler.store import ledger
from reconciler.store.sessions import bound_idle, unreachable

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class _Recorded:
    """A batch whose ledger rows are committed: `to_publish` may now be published."""

    requests: list[FireRequest]
    to_publish: list[FireRequest]


def _take_batch(source: queue.Queue[Any], size: int, *, linger: float = 0.0) -> list[Any]:
    """Block for one item, then take more, up to `size`, for at most `linger` seconds
    (stop at _STOP)."""
    items = [source.get()]
    deadline = time.monotonic() + linger
    while len(items) < size and items[-1] is not _STOP:
        try:
            items.append(source.get(timeout=max(deadline - time.monotonic(), 0)))
        except queue.Empty:
            break
    return items


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
        batch_size: int = 1000,
        queue_size: int = 100_000,
        backoff: Backoff | None = None,
        publish_grace: float = 30.0,
        linger: float = 0.02,
        publish_window: int = 3,
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
        # How long the recorder waits to fill a batch once a fire arrived. A burst of
        # due slots trickles in at the scheduler's pace, not at once: without it, batches
        # of a few fires each cost the same round trips as full ones, and the busy
        # pipeline threads slow the scheduler's own database I/O (the GIL).
        self._linger = linger
        # Batches a publisher thread has written and not yet seen confirmed (>= 1).
        self._publish_window = max(publish_window, 1)
        self._in_flight: set[str] = set()
        # Requests whose publish failed, by id, so the retrier re-sends exactly what was
        # fired (bounded: past it, the retrier rebuilds payloads from the inventory).
        self._unpublished: dict[str, FireRequest] = {}
        self._unpublished_limit = queue_size
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified when nothing is in flight
        # Bounded: when the broker is slow the recorder waits here, not the scheduler.
        self._handoff: queue.Queue[_Recorded | object] = queue.Queue(maxsize=4)
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self._broker_down = False  # the last publish failed (guarded by self._lock)
        # This leader's takeover (take_over): its fires of slots up to it are inherited.
        self._took_over_at: datetime | None = None

    # --- stage 1: the scheduler's thread -----------------------------------------------
    def fire(self, *, job: str, payload: FirePayload, scheduled_time: datetime) -> FireRequest:
        """Accept one due slot. Returns at once (the ledger write and publish follow on the
        pipeline threads).

        Raises NotLeaderError (and records nothing) unless this process is leader;
        ValueError for a naive scheduled_time. If the queue is full (the pipeline is far
        behind) or the dispatcher was stopped, the row is written here, synchronously,
        due for the retrier: slower, never lost, still never waiting for the broker.
        """
        if not self._fence.is_leader():
            metrics.FIRES.labels(job, FireOutcome.FENCED).inc()
            raise NotLeaderError(f"not the leader: slot of {job!r} not fired")
        request = make_request(
            job=job, payload=payload, scheduled_time=scheduled_time, now=self._clock()
        )
        took_over_at = self._took_over_at
        if took_over_at is not None and request.slot <= took_over_at:
            request = replace(request, inherited=True)
        self._enqueue(request)
        return request

    def take_over(self, *, at: datetime) -> None:
        """This process leads from `at` on (aware; call it before its scheduler starts):
        its fires of slots at or before `at` are INHERITED (FireRequest.inherited).

        Those slots were due when it took over (made due again by its rewind, or still
        due), and the previous leader, fenced only since, may have accepted them: paused
        between accepting a fire and recording it, it still records the slot when it
        wakes, and may write the job's row back after this leader read it (this leader
        then fires that slot again). Found in the ledger, such a fire is the failover's
        hand-over, not a duplicate (batch.record_batch). A slot after `at` no fenced
        predecessor can have accepted: a second fire of it is a duplicate."""
        self._took_over_at = at

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
            metrics.FIRES.labels(job, FireOutcome.MISSED).inc()
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
            if self._stopped:
                raise queue.Full  # nobody would drain the queue any more
            self._queue.put_nowait(request)
        except queue.Full:
            log.warning(
                "fire queue full or stopped: recording %s synchronously",
                request.id,
                extra=job_extra(request.job),
            )
            try:
                self._record([request], publishable=False)
                if request.kind == "fire":
                    self._remember_unpublished([request], published=())
            finally:
                self._forget([request])

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the pipeline threads (recorder, publisher). Idempotent."""
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._record_loop, name="fire-recorder", daemon=True),
            ]
            # One publisher thread per broker connection: while one waits for its
            # batch's confirms and ledger update, another publishes the next batch.
            self._threads += [
                threading.Thread(target=self._publish_loop, name=f"fire-publisher-{n}", daemon=True)
                for n in range(self._publisher.connections)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Finish what is queued (record, publish with its deadline), then stop. Call it
        AFTER the scheduler has shut down, so the scheduler's last pass is recorded."""
        threads, self._threads = self._threads, []
        self._stopped = True
        if threads:
            self._queue.put(_STOP)  # flows through the recorder to the publishers
            deadline = time.monotonic() + timeout
            for thread in threads:
                thread.join(max(deadline - time.monotonic(), 0))
                if thread.is_alive():
                    log.error("%s did not finish in %.0f s", thread.name, timeout)
        self._publisher.close()

    # --- stage 2: the pipeline threads ----------------------------------------------------
    # The recorder writes batch N+1 to the ledger while the publishers publish batch N
    # (and N-1): the database and the broker work at the same time. Handing a batch over only after
    # its transaction committed keeps "ledger row first, then message".
    def _record_loop(self) -> None:
        while True:
            items = _take_batch(self._queue, self._batch_size, linger=self._linger)
            requests = [item for item in items if isinstance(item, FireRequest)]
            if requests:
                self._handoff.put(self._record_stage(requests))
            if len(requests) < len(items):
                self._handoff.put(_STOP)
                return

    def _publish_loop(self) -> None:
        # Publishing ahead of confirms: while the broker confirms batch N, this thread
        # writes N+1 if it is recorded (up to `publish_window` batches unconfirmed on its
        # connection); a batch is marked published only once all its confirms are in
        # (Pipeline). A connection is held only while batches await their confirms.
        while True:
            item = self._handoff.get()
            if item is _STOP:
                self._handoff.put(_STOP)  # for the other publisher threads
                return
            assert isinstance(item, _Recorded)
            with self._publisher.pipeline() as pipeline:
                unsettled = deque([item]) if self._send_stage(pipeline, item) else deque()
                while unsettled:
                    following = None
                    if pipeline.oldest_answered():
                        # Confirmed already: marked before anything else is written.
                        self._settle_stage(pipeline, unsettled.popleft())
                        continue
                    if len(unsettled) < self._publish_window:
                        with contextlib.suppress(queue.Empty):
                            following = self._handoff.get_nowait()
                    if following is _STOP:
                        self._handoff.put(_STOP)  # seen again once these are settled
                    elif isinstance(following, _Recorded):
                        if self._send_stage(pipeline, following):
                            unsettled.append(following)
                        continue
                    self._settle_stage(pipeline, unsettled.popleft())

    def _record_stage(self, requests: Sequence[FireRequest]) -> _Recorded:
        """Record the fresh requests; pass on what to publish. Never raises."""
        fresh = [r for r in requests if not r.recorded]
        again = [r for r in requests if r.recorded]
        to_publish: list[FireRequest] = []
        try:
            publishable = self._fence.is_leader()
            to_publish = self._record_with_retries(fresh, publishable=publishable)
            if not publishable:
                again = []
        except Exception:  # a bug or a dead database must not kill the pipeline
            log.exception("fire pipeline: recording a batch of %d failed", len(fresh))
        return _Recorded(requests=list(requests), to_publish=to_publish + again)

    def _send_stage(self, pipeline: Pipeline, recorded: _Recorded) -> bool:
        """Write one recorded batch on `pipeline`; False when there is nothing to settle
        (nothing to publish, or leadership lost since recording: the rows wait for the
        leader's retrier). Never raises."""
        try:
            if recorded.to_publish and self._fence.is_leader():
                pipeline.send(recorded.to_publish)  # never raises for a broker problem
                return True
        except Exception:  # a bug must not kill the pipeline; the rows stay due
            log.exception("fire pipeline: publishing %d fires failed", len(recorded.to_publish))
        self._forget(recorded.requests)
        return False

    def _settle_stage(self, pipeline: Pipeline, recorded: _Recorded) -> None:
        """Await the oldest batch's confirms and mark it. Never raises: failures leave
        the rows for the retrier and are logged."""
        try:
            _sent, result = pipeline.settle_oldest()
            # Retried like the record: a mark lost to a blink leaves confirmed fires
            # 'scheduled', and the retrier would send them to the broker a second time
            # (run once all the same: the task id is the fire id). Still in flight
            # meanwhile, so this process's retrier leaves them alone.
            _retrying_blinks(lambda: self._mark(recorded.to_publish, result))
        except Exception:  # a bug or a dead database must not kill the pipeline
            log.exception("fire pipeline: publishing %d fires failed", len(recorded.to_publish))
        finally:
            self._forget(recorded.requests)

    def _record_with_retries(
        self, requests: Sequence[FireRequest], *, publishable: bool
    ) -> list[FireRequest]:
        # The database blinking must not cost the batch: these slots exist nowhere else
        # (APScheduler has already moved next_run_time on). A few seconds of retries,
        # then the error propagates and is logged with the batch size. Retried too: a
        # transaction the server ended under a process frozen inside it (store.sessions:
        # an InternalError on a lost connection); woken, it is no longer the leader, and
        # the retry records the batch late (a slot the next leader recorded meanwhile is
        # handed over).
        return _retrying_blinks(lambda: self._record(requests, publishable=publishable))

    def _record(self, requests: Sequence[FireRequest], *, publishable: bool) -> list[FireRequest]:
        if not requests:
            return []
        now = self._clock()
        # Accepted while leading, recorded after losing it: a slot found in the ledger
        # is the next leader's, not a duplicate (batch.record_batch).
        late = not self._fence.is_leader()
        # Not publishable (fenced, or late: the lead was lost since the batch was taken,
        # e.g. during a freeze inside a first attempt): the rows are due for the
        # leader's retrier at once, not after the publish grace.
        publishable = publishable and not late
        retry_at = now + self._publish_grace if publishable else now
        with self._engine.begin() as connection:
            bound_idle(connection)  # a frozen recorder holds its rows' locks (store.sessions)
            outcome = batch.record_batch(
                connection, requests, now=now, retry_at=retry_at, late=late
            )
        _count_outcome(outcome, late=late)
        return outcome.to_publish if publishable else []

    def _mark(self, requests: Sequence[FireRequest], result: PublishResult) -> None:
        """The broker's answer on `requests`: confirmed rows 'published', the others due
        again after a backoff."""
        now = self._clock()
        failed = {r.id: r for r in requests if r.id not in result.confirmed}
        retry_at = {key: now + self._backoff.delay(r.attempts + 1) for key, r in failed.items()}
        with self._lock:
            recovered = self._broker_down and not failed
            self._broker_down = bool(failed)
        with self._engine.begin() as connection:
            bound_idle(connection)  # as in _record
            ledger.mark_published(connection, result.confirmed, now=now)
            ledger.mark_unpublished(connection, retry_at, now=now)
            if recovered:
                # The broker is back: rows waiting out their backoff (up to 60 s) are due
                # now, so an outage's fires go out within a retrier pass of its end.
                ledger.make_unpublished_due(connection, now=now)
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

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every fire accepted so far has been recorded and published (or
        its publish has failed: the row is then the retrier's), at most `timeout`
        seconds. True if nothing is in flight any more."""
        with self._settled:
            return self._settled.wait_for(lambda: not self._in_flight, timeout)

    def _forget(self, requests: Iterable[FireRequest]) -> None:
        with self._lock:
            self._in_flight.difference_update(r.id for r in requests)
            if not self._in_flight:
                self._settled.notify_all()


def _retrying_blinks(write: Callable[[], _T]) -> _T:
    """`write()`, again after each of DB_RETRY_DELAYS when the database could not be
    reached (a blink, or a transaction the server ended under a frozen process); the
    last attempt's error propagates. Each attempt is one whole transaction."""
    for delay in DB_RETRY_DELAYS:
        try:
            return write()
        except SQLAlchemyError as error:
            if not unreachable(error):
                raise
            log.warning("ledger write failed (retry in %.1f s): %s", delay, error)
            time.sleep(delay)
    return write()


# The two sides of a failover's hand-over (batch.record_batch), as the log says them.
_LATE_HAND_OVER = (
    "slot %s, fired before this process lost the leadership, is already in the ledger: "
    "the next leader's, not published here"
)
_INHERITED_HAND_OVER = (
    "slot %s, due when this process took over the leadership, is already in the ledger: "
    "the failover's (the previous leader recorded it or wrote its job back late), not a "
    "duplicate"
)


def _count_outcome(outcome: batch.BatchOutcome, *, late: bool) -> None:
    for request in outcome.duplicates:
        metrics.DUPLICATE_FIRES.labels(request.job).inc()
        metrics.FIRES.labels(request.job, FireOutcome.DUPLICATE).inc()
        log.info(
            "slot %s already in the ledger: duplicate fire not published",
            rfc3339(request.slot),
            extra=job_extra(request.job),
        )
    for request in outcome.handed_over:
        metrics.FIRES.labels(request.job, FireOutcome.FENCED).inc()
        log.info(
            _LATE_HAND_OVER if late else _INHERITED_HAND_OVER,
            rfc3339(request.slot),
            extra=job_extra(request.job),
        )
    for request in outcome.overlaps:
        metrics.MISSED_SLOTS.labels(request.job, MissReason.OVERLAP).inc()
        metrics.FIRES.labels(request.job, FireOutcome.SKIPPED_OVERLAP).inc()
        log.info(
            "slot %s skipped: overlap (max_concurrent_runs reached)",
            rfc3339(request.slot),
            extra=job_extra(request.job),
        )


def _count_publish(
    requests: Sequence[FireRequest], result: PublishResult, *, now: datetime
) -> None:
    for request in requests:
        if request.id in result.confirmed:
            metrics.FIRES.labels(request.job, FireOutcome.PUBLISHED).inc()
            metrics.FIRE_LATENESS.observe((now - request.slot).total_seconds())
        else:
            metrics.FIRES.labels(request.job, FireOutcome.UNPUBLISHED).inc()
            metrics.PUBLISH_FAILURES.inc()
    if result.error:
        log.warning(
            "%d of %d fires unpublished: %s",
            len(requests) - len(result.confirmed),
            len(requests),
            result.error,
        )
