"""Per-process worker state and the execution protocol of one fire.

A prefork worker runs tasks in forked pool processes: a database engine or a Redis
connection created before the fork must not be used after it (two processes on one
socket). So each process builds its own `WorkerRuntime` (engine, Redis guard, heartbeat
thread): eagerly on `worker_process_init` (pool processes), lazily on first use anywhere
else (the solo and threads pools, the worker's main process), and keyed by pid so that a
runtime inherited through a fork is never used.

The protocol, called by BaseTask:
    admit(fire)   -> Admission        claim the idempotency key, then the ledger row
    succeeded / failed / retrying / skipped                record the outcome
A fire runs only when admitted, and it is admitted only by the LEDGER's claim (a
compare-and-set of the row to `started` with an attempt token and a lease, see
worker/claims.py), whatever Redis says. Redis is the fast path in front of it: a key
held or completed refuses a duplicate delivery without touching the database; a key
claimed still needs the ledger's claim (Redis may have forgotten, been flushed, or
failed over to an empty replica). Without Redis (embedded mode, RECONCILER_REDIS_URL
empty, or Redis failing) the ledger claims alone.

The claim waits rather than guesses:
- the database does not answer: the claim is retried (backoff up to 2 s, a WARNING a
  minute) until it does: no execution without a claim, and the message stays unacked;
- the row is `started` under a live lease, and this delivery is a redelivery or a
  Celery retry of the fire: the holder is probably the crashed or earlier attempt; wait
  up to one lease for it to lapse, then take it over (a live holder keeps renewing: the
  delivery is then a duplicate). A plain second delivery is a duplicate at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_revoked,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from reconciler.core.vocabulary import RunStatus, TaskOutcome
from reconciler.logs import line_formatter
from reconciler.redact import mask_logs
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.sessions import idle_bounded_sessions
from reconciler.worker.claims import (
    Claim,
    Ledger,
    Start,
    attempt_prefix,
    new_attempt,
)
from reconciler.worker.context import FireContext, completed_value, fire_context, owner_value
from reconciler.worker.guard import Heartbeat, RedisGuard
from reconciler.worker.writer import LedgerWriter

log = logging.getLogger(__name__)

# Apps created in this process (weakly held): the fork signals carry no app, and tests
# and the benchmark create several apps in one process.
_APPS: weakref.WeakSet[Celery] = weakref.WeakSet()
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a delivery may run. When not: `reason` for the ledger and the logs, and
    `own_fire` (the holder is this very fire: a duplicate delivery of it)."""

    run: bool
    reason: str = ""
    own_fire: bool = True
    key_value: str | None = None  # the value we hold in Redis, if we claimed it there
    attempt: str | None = None  # our claim token in the ledger, if the row exists


CLAIM_RETRY_CAP = 2.0
WAIT_LOG_SECONDS = 60.0


class WorkerRuntime:
    """Everything one process needs to guard and record fires. Not shared across forks."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger,
        guard: RedisGuard | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.guard = guard
        self.lease_seconds = settings.idempotency_lease_seconds
        interval = self.lease_seconds / 3
        self.heartbeat = Heartbeat(guard.renew, interval=interval) if guard is not None else None
        # The ledger leases: renewed until the run's final write is APPLIED (not queued),
        # so a database outage does not let the leader's reaper or a redelivery take a
        # run whose outcome is waiting in the spool.
        self.leases = Heartbeat(
            lambda held: ledger.renew(held, lease_seconds=self.lease_seconds),
            interval=interval,
            name="ledger-lease",
            errors=(sa.exc.SQLAlchemyError,),
        )
        self.writer = LedgerWriter(
            ledger, complete_keys=self._complete_keys, on_applied=self.leases.drop_many
        )
        self.pid = os.getpid()
        self._sleep = sleep
        self._redis_warned = -WAIT_LOG_SECONDS  # monotonic time of the last warning

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerRuntime:
        # No pre-ping (a round trip per checkout on the hot path): a dropped connection
        # fails one claim read, which is retried, and one writer batch, which is retried.
        engine = ledger_engine(settings.database_url)
        reader = create_sync_engine(settings.database_url, isolation_level="AUTOCOMMIT")
        guard = None
        if settings.redis_url:
            client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=5, socket_connect_timeout=5
            )
            guard = RedisGuard(
                client,
                prefix=settings.redis_prefix,
                lease_seconds=settings.idempotency_lease_seconds,
                completed_ttl_seconds=settings.idempotency_ttl_seconds,
            )
        return cls(settings, ledger=Ledger(engine, reader=reader), guard=guard)

    # --- the protocol ------------------------------------------------------------------
    def admit(self, fire: FireContext) -> Admission:
        """Claim the fire for this delivery (see the module doc). Never raises for a
        service failure; blocks while the database does not answer."""
        value = owner_value(task_id=fire.run_id, hostname=fire.hostname, pid=fire.pid)
        claimed = self._claim_key(fire, value)
        if isinstance(claimed, Admission):
            return claimed
        key_value = value if claimed else None
        attempt = new_attempt(fire.hostname)
        claim = self._claim_row(fire, attempt)
        if not claim.outcome.runs:
            self._settle_key(fire, key_value, succeeded=claim.status == RunStatus.SUCCEEDED)
            if claim.outcome is Start.BUSY:
                reason = f"running as attempt {claim.holder} (lease {claim.lease_left:.0f} s)"
            else:
                reason = f"the run ledger says {claim.status}"
            return Admission(run=False, reason=reason)
        if claim.outcome is Start.NO_ROW:
            log.warning("fire %s has no job_runs row: running it unrecorded", fire.run_id)
            return Admission(run=True, key_value=key_value)
        self.leases.hold(fire.run_id, attempt)
        return Admission(run=True, key_value=key_value, attempt=attempt)

    def _claim_row(self, fire: FireContext, attempt: str) -> Claim:
        """The ledger's claim, retried while the database does not answer, and waited
        out (up to a lease) when an earlier attempt of this fire may still hold it."""
        waited_since = time.monotonic()
        logged_at = 0.0
        failures = 0
        patience = self.lease_seconds + 2
        while True:
            claim = self.ledger.claim(
                fire.run_id,
                attempt=attempt,
                worker=fire.hostname,
                retries=fire.retries,
                lease_seconds=self.lease_seconds,
            )
            waited = time.monotonic() - waited_since
            if claim.outcome is Start.UNKNOWN:
                failures += 1
                if time.monotonic() - logged_at >= WAIT_LOG_SECONDS:
                    logged_at = time.monotonic()
                    log.warning(
                        "fire %s waits for the run ledger (no execution without a claim): %s",
                        fire.run_id,
                        claim.status,
                    )
                self._sleep(min(CLAIM_RETRY_CAP, 0.1 * 2**failures))
                continue
            earlier_attempt = fire.redelivered or fire.retries > claim.holder_retries
            if claim.outcome is Start.BUSY and earlier_attempt and waited < patience:
                self._sleep(min(max(claim.lease_left, 0.1), 0.5))
                continue
            return claim

    def succeeded(self, fire: FireContext, admission: Admission, result: Any) -> None:
        # Both deferred (see LedgerWriter): the row, then the key, in a moment. The
        # leases are renewed until then, so duplicates stay refused meanwhile.
        if admission.attempt is not None:
            self.writer.write(
                TaskOutcome.SUCCEEDED,
                self.ledger.succeeded_values(fire.run_id, attempt=admission.attempt, result=result),
            )
        if admission.key_value is not None:
            self.writer.complete_key((fire, admission.key_value))

    def failed(self, fire: FireContext, admission: Admission | None, error: BaseException) -> None:
        if admission is None:
            # The worker's main process (a hard time limit killed the pool process): the
            # attempt is the lost process's; end its lease, the row's status follows.
            self._settle_key(fire, self._lost_value(fire), succeeded=False)
            self.ledger.failed_lost(
                fire.run_id, prefix=attempt_prefix(fire.hostname, fire.pid), error=error
            )
            return
        if admission.attempt is not None:
            self.writer.write(
                TaskOutcome.FAILED,
                self.ledger.failed_values(
                    fire.run_id, attempt=admission.attempt, error=error, worker=fire.hostname
                ),
            )
        self._settle_key(fire, admission.key_value, succeeded=False)

    def retrying(self, fire: FireContext, admission: Admission, error: BaseException) -> None:
        """Before the retry is published: record it and free the key for the retry.
        The retry waits out our lease if this write is still spooled."""
        if admission.attempt is not None:
            self.writer.write(
                TaskOutcome.RETRIED,
                self.ledger.retried_values(
                    fire.run_id, attempt=admission.attempt, error=error, retries=fire.retries + 1
                ),
            )
            self.writer.flush(timeout=self.lease_seconds)
        self._settle_key(fire, admission.key_value, succeeded=False)

    def skipped(self, fire: FireContext, admission: Admission) -> None:
        self.writer.write(
            TaskOutcome.DUPLICATE,
            self.ledger.duplicate_values(
                fire.run_id, reason=admission.reason, own_fire=admission.own_fire
            ),
        )

    def release_lost(self, fire: FireContext) -> None:
        """The worker's main process lost the pool process running `fire` (killed, hard
        time limit): free its key and end its lease now rather than after the lease."""
        self._settle_key(fire, self._lost_value(fire), succeeded=False)
        self.ledger.release_lease(fire.run_id, prefix=attempt_prefix(fire.hostname, fire.pid))
        log.warning("released the idempotency key of lost fire %s", fire.run_id)

    def close(self) -> None:
        """Write what is queued, stop renewing leases, close connections."""
        self.writer.flush()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.leases.stop()
        self.ledger.dispose()

    # --- helpers -----------------------------------------------------------------------
    def _claim_key(self, fire: FireContext, value: str) -> bool | Admission:
        """True: claimed in Redis; False: no Redis answer; an Admission: refused."""
        if self.guard is None:
            return False
        try:
            claim = self.guard.claim(fire.idempotency_key, value, redelivered=fire.redelivered)
        except redis.RedisError as error:
            self._redis_down(error)
            return False
        if not claim.claimed:
            holder = str(claim.holder.get("task_id", "?"))
            state = str(claim.holder.get("status", "?"))
            return Admission(
                run=False,
                reason=f"idempotency key {fire.idempotency_key} {state} (fire {holder})",
                own_fire=holder == fire.run_id,
            )
        if self.heartbeat is not None:
            self.heartbeat.hold(fire.idempotency_key, value)
        return True

    def _redis_down(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._redis_warned >= WAIT_LOG_SECONDS:
            self._redis_warned = now
            log.warning("idempotency guard unavailable (%s): the ledger claims alone", error)

    def _settle_key(self, fire: FireContext, key_value: str | None, *, succeeded: bool) -> None:
        if self.guard is None or key_value is None:
            return
        if self.heartbeat is not None:
            self.heartbeat.drop(fire.idempotency_key)
        try:
            if succeeded:
                done = completed_value(task_id=fire.run_id, hostname=fire.hostname)
                if not self.guard.mark_completed(fire.idempotency_key, key_value, done):
                    log.warning("fire %s: its idempotency lease was taken over", fire.run_id)
            else:
                self.guard.release(fire.idempotency_key, key_value)
        except redis.RedisError as error:
            # Completed: the ledger still says succeeded and refuses a rerun. Release: the
            # lease expires by itself.
            self._redis_down(error)

    def _complete_keys(self, items: list[tuple[FireContext, str]]) -> None:
        """Mark the keys of succeeded fires completed (called by the writer's thread)."""
        assert self.guard is not None  # only queued when Redis claimed the key
        requests = [
            (
                fire.idempotency_key,
                value,
                completed_value(task_id=fire.run_id, hostname=fire.hostname),
            )
            for fire, value in items
        ]
        try:
            outcomes = self.guard.mark_many_completed(requests)
        except redis.RedisError as error:
            # The ledger says succeeded and refuses a rerun; the leases lapse by themselves.
            self._redis_down(error)
            outcomes = [True] * len(items)
        for (fire, _), done in zip(items, outcomes, strict=True):
            if self.heartbeat is not None:
                self.heartbeat.drop(fire.idempotency_key)
            if not done:
                log.warning("fire %s: its idempotency lease was taken over", fire.run_id)

    def _lost_value(self, fire: FireContext) -> str:
        return owner_value(task_id=fire.run_id, hostname=fire.hostname, pid=fire.pid)


def register_app(app: Celery, settings: Settings) -> None:
    """Remember `app` and its settings for this process's runtime."""
    app.reconciler_settings = settings
    _APPS.add(app)


def runtime_for(app: Celery) -> WorkerRuntime:
    """This process's runtime for `app`, built on first use (and again after a fork)."""
    runtime: WorkerRuntime | None = getattr(app, "reconciler_runtime", None)
    if runtime is not None and runtime.pid == os.getpid():
        return runtime
    with _BUILD_LOCK:  # the threads pool: one runtime per process, not one per thread
        runtime = getattr(app, "reconciler_runtime", None)
        if runtime is None or runtime.pid != os.getpid():
            runtime = WorkerRuntime.from_settings(settings_of(app))
            app.reconciler_runtime = runtime
    return runtime


def settings_of(app: Celery) -> Settings:
    settings: Settings | None = getattr(app, "reconciler_settings", None)
    if settings is None:
        # An app we did not build (a test's plain Celery): read the environment.
        from reconciler.settings import load_settings

        settings = load_settings()
        app.reconciler_settings = settings
    return settings


@worker_process_init.connect(weak=False)
def _on_process_init(**_: Any) -> None:
    for app in list(_APPS):
        inherited: WorkerRuntime | None = getattr(app, "reconciler_runtime", None)
        if inherited is not None and inherited.pid != os.getpid():
            # The parent's pooled connections are the parent's: drop them without closing
            # (closing would tell PostgreSQL to end the parent's sessions).
            inherited.ledger.dispose(close=False)
        app.reconciler_runtime = None
        runtime_for(app)


@worker_process_shutdown.connect(weak=False)
@worker_shutdown.connect(weak=False)
def _on_shutdown(**_: Any) -> None:
    for app in list(_APPS):
        runtime: WorkerRuntime | None = getattr(app, "reconciler_runtime", None)
        if runtime is not None and runtime.pid == os.getpid():
            runtime.close()
            app.reconciler_runtime = None


@after_setup_logger.connect(weak=False)
def _quiet_result_logging(logger: logging.Logger | None = None, **_: Any) -> None:
    _our_line_shape(logger)
    # Celery's own "Task ... succeeded in ...: <result>" line prints results unredacted;
    # BaseTask logs a redacted `task.succeeded` line instead. Failures stay logged.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


@after_setup_task_logger.connect(weak=False)
def _our_line_shape(logger: logging.Logger | None = None, **_: Any) -> None:
    """Celery's handlers write our lines (RFC 3339 UTC times, `job=NAME`, JSON lines with
    RECONCILER_LOG_FORMAT=json), as every other process does, not Celery's own format."""
    if logger is None:
        return
    for handler in logger.handlers:
        handler.setFormatter(line_formatter())
    mask_logs(logger.handlers)  # secrets by value (URLs, tokens) never reach a log line


@task_revoked.connect(weak=False)
def _on_revoked(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    # Celery drops an expired message in the worker's main process without running any
    # task hook: record it here, or the run would stay `published` forever.
    app = getattr(sender, "app", None)
    if not expired or request is None or app not in _APPS:
        return
    fire = fire_context(request, task=getattr(sender, "name", ""))
    if fire is not None:
        runtime_for(app).ledger.expired(fire.run_id)


def ledger_engine(url: str) -> sa.Engine:
    """The engine of a worker's ledger writes: every transaction of it bounded
    (store.sessions.idle_bounded_sessions), so that a worker frozen inside one holds no
    run's row past IDLE_SECONDS."""
    return create_sync_engine(url, **idle_bounded_sessions(url))
