"""Per-process worker state and the execution protocol of one fire.

A prefork worker runs tasks in forked pool processes: a database engine or a Redis
connection created before the fork must not be used after it (two processes on one
socket). So each process builds its own `WorkerRuntime` (engine, Redis guard, heartbeat
thread): eagerly on `worker_process_init` (pool processes), lazily on first use anywhere
else (the solo and threads pools, the worker's main process), and keyed by pid so that a
runtime inherited through a fork is never used.

The protocol, called by BaseTask:
    admit(fire)   -> Admission        claim the idempotency key, move the row to started
    succeeded / failed / retrying / skipped                record the outcome
A fire runs only when admitted. Claim order: Redis first (cheap, shared by all workers),
then the ledger, which is the authority: a row already final refuses the run even if
Redis had forgotten the key (a read; the `started` and `succeeded` writes of the hot path
are batched by `LedgerWriter`). Without Redis (embedded mode, RECONCILER_REDIS_URL empty,
or Redis failing) the ledger's conditional UPDATE is the claim on its own, synchronously.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.signals import (
    after_setup_logger,
    task_revoked,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.worker.context import FireContext, completed_value, fire_context, owner_value
from reconciler.worker.guard import Heartbeat, RedisGuard
from reconciler.worker.ledger import Ledger, Start
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


class WorkerRuntime:
    """Everything one process needs to guard and record fires. Not shared across forks."""

    def __init__(self, settings: Settings, *, ledger: Ledger, guard: RedisGuard | None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.guard = guard
        self.heartbeat = Heartbeat(guard) if guard is not None else None
        self.writer = LedgerWriter(ledger, complete_keys=self._complete_keys)
        self.pid = os.getpid()

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerRuntime:
        # No pre-ping (a round trip per checkout on the hot path): the writer retries a
        # batch once on a dropped connection, and a failed read lets Redis guard alone.
        engine = create_sync_engine(settings.database_url)
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
        """Claim the fire for this delivery. Never raises for a service failure: without
        Redis the ledger claims alone; without the ledger Redis does (both logged)."""
        value = owner_value(task_id=fire.run_id, hostname=fire.hostname, pid=fire.pid)
        claimed = self._claim_key(fire, value)
        if isinstance(claimed, Admission):
            return claimed
        if claimed:
            # Redis arbitrated: the ledger only has to say whether the fire is final
            # (Redis may have lost the key), a read; the `started` write can wait.
            outcome, status = self.ledger.peek(fire.run_id)
        else:
            # No Redis answer: the ledger's conditional UPDATE is the claim. It refuses a
            # row another delivery already started, unless this is a redelivery (the
            # delivery that started it is gone).
            outcome, status = self.ledger.start(
                fire.run_id,
                worker=fire.hostname,
                retries=fire.retries,
                exclusive=not fire.redelivered,
            )
        key_value = value if claimed else None
        if outcome is Start.REFUSED:
            self._settle_key(fire, key_value, succeeded=status == "succeeded")
            return Admission(run=False, reason=f"the run ledger says {status}")
        if outcome is Start.NO_ROW:
            log.warning("fire %s has no job_runs row: running it unrecorded", fire.run_id)
        elif claimed:
            self.writer.started(fire.run_id, worker=fire.hostname, retries=fire.retries)
        return Admission(run=True, key_value=key_value)

    def succeeded(self, fire: FireContext, admission: Admission, result: Any) -> None:
        if admission.key_value is None:  # no Redis: the ledger is the guard, write it now
            self.ledger.succeeded(fire.run_id, result=result)
            return
        # Both deferred (see LedgerWriter): the row, then the key, in a moment. The key's
        # lease is renewed until then, so duplicates stay refused meanwhile.
        self.writer.succeeded(fire.run_id, result=result)
        self.writer.complete_key((fire, admission.key_value))

    def failed(self, fire: FireContext, admission: Admission | None, error: BaseException) -> None:
        key_value = admission.key_value if admission else self._lost_value(fire)
        self.writer.flush()  # never let a queued `started` overwrite this
        # The ledger first: once the key is free, only the final status stops a duplicate.
        self.ledger.failed(fire.run_id, error=error, worker=fire.hostname)
        self._settle_key(fire, key_value, succeeded=False)

    def retrying(self, fire: FireContext, admission: Admission, error: BaseException) -> None:
        """Before the retry is published: record it and free the key for the retry."""
        self.writer.flush()
        self.ledger.retried(fire.run_id, error=error, retries=fire.retries + 1)
        self._settle_key(fire, admission.key_value, succeeded=False)

    def skipped(self, fire: FireContext, admission: Admission) -> None:
        self.writer.flush()
        self.ledger.duplicate(fire.run_id, reason=admission.reason, own_fire=admission.own_fire)

    def release_lost(self, fire: FireContext) -> None:
        """The worker's main process lost the pool process running `fire` (killed, hard
        time limit): free its key now rather than after its lease."""
        self._settle_key(fire, self._lost_value(fire), succeeded=False)
        log.warning("released the idempotency key of lost fire %s", fire.run_id)

    def close(self) -> None:
        """Write what is queued, stop renewing leases, close connections."""
        self.writer.flush()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.ledger.dispose()

    # --- helpers -----------------------------------------------------------------------
    def _claim_key(self, fire: FireContext, value: str) -> bool | Admission:
        """True: claimed in Redis; False: no Redis answer; an Admission: refused."""
        if self.guard is None:
            return False
        try:
            claim = self.guard.claim(fire.idempotency_key, value, redelivered=fire.redelivered)
        except redis.RedisError as error:
            log.warning("idempotency guard unavailable (%s): the ledger claims alone", error)
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
            log.warning("idempotency key of fire %s not updated: %s", fire.run_id, error)

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
            log.warning("%d idempotency keys not completed: %s", len(items), error)
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
def _quiet_result_logging(**_: Any) -> None:
    # Celery's own "Task ... succeeded in ...: <result>" line prints results unredacted;
    # BaseTask logs a redacted `task.succeeded` line instead. Failures stay logged.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


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
