"""BaseTask: the base class of every reconciler task.

One execution of a task (a delivery of a fire) goes through:

    before_start   log the start (kwargs redacted), note the start time
    __call__       admit the fire (idempotency key + ledger row -> started), run it;
                   on an exception, retry per the fire's policy (headers max_retries,
                   retry_delay_seconds) or let it fail
    on_success     ledger succeeded + result summary, key completed (both batched a
                   moment later by the process's LedgerWriter), metrics
    on_failure     ledger failed + error text, key released, metrics
    on_retry       metrics and log (the ledger was written before the retry's publish)

A delivery that is not admitted (the fire already ran or is running) is not executed:
it is counted (job_runs.duplicates, IDEMPOTENT_SKIPS) and returns
`{"status": "duplicate", "fire": <id>, "reason": ...}` without raising, and without
storing that as the fire's result (it would hide the real one).

A message without our headers (sent by hand) runs with logs and metrics only.

Not retried, whatever the policy: PermanentTaskError (the input is wrong) and time-limit
errors (a run that was too slow once will be again; a retry would double its cost).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from reconciler.core.vocabulary import TaskOutcome
from reconciler.errors import PermanentTaskError as PermanentTaskError  # tasks import it here
from reconciler.logs import job_extra
from reconciler.metrics import (
    IDEMPOTENT_SKIPS,
    JOB_LAST_SUCCESS,
    JOB_RUN_DURATION,
    JOB_RUNS,
    TASK_DURATION,
    TASK_EXECUTIONS,
    TASK_RETRIES,
)
from reconciler.redact import redact
from reconciler.worker.claims import describe
from reconciler.worker.context import FireContext, fire_context
from reconciler.worker.runtime import Admission, runtime_for

log = logging.getLogger("reconciler.worker.task")

# Attributes this class keeps on the per-execution request (Celery's Context).
_FIRE, _ADMISSION, _STARTED = "reconciler_fire", "reconciler_admission", "reconciler_t0"


NOT_RETRIED: tuple[type[BaseException], ...] = (
    PermanentTaskError,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
)


class BaseTask(Task):
    """Lifecycle hooks that guard, record and measure every execution."""

    Request = "reconciler.worker.request:MainProcessRequest"

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        setattr(self.request, _STARTED, time.monotonic())
        fire = fire_context(self.request, task=self.name)
        job = fire.job if fire is not None else None
        log_event(logging.INFO, "task.started", job=job, task=self.name, id=task_id, kwargs=kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fire = fire_context(self.request, task=self.name)
        if fire is None:
            log_event(logging.INFO, "task.unguarded", task=self.name, id=self.request.id)
            return self.run(*args, **kwargs)
        runtime = runtime_for(self.app)
        admission = runtime.admit(fire)
        setattr(self.request, _FIRE, fire)
        setattr(self.request, _ADMISSION, admission)
        if not admission.run:
            return self._skip(fire, admission)
        try:
            return self.run(*args, **kwargs)
        except Exception as error:
            if fire.retries >= fire.max_retries or isinstance(error, NOT_RETRIED):
                raise
            # Ledger and key first: the retry may be consumed the moment it is published.
            runtime.retrying(fire, admission, error)
            raise self.retry(
                exc=error, countdown=fire.retry_delay_seconds, max_retries=fire.max_retries
            ) from error

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        admission: Admission | None = getattr(self.request, _ADMISSION, None)
        if admission is not None and not admission.run:
            return
        fire: FireContext | None = getattr(self.request, _FIRE, None)
        duration = self._observe(TaskOutcome.SUCCEEDED, fire)
        if fire is not None and admission is not None:
            runtime_for(self.app).succeeded(fire, admission, retval)
            if fire.job:
                JOB_LAST_SUCCESS.labels(fire.job).set(time.time())
        log_event(
            logging.INFO,
            "task.succeeded",
            job=fire.job if fire else None,
            task=self.name,
            id=task_id,
            seconds=duration,
        )

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        # In the worker's main process (a hard time limit) there is no admission: the
        # request was rebuilt from the message by MainProcessRequest.
        fire = getattr(self.request, _FIRE, None) or fire_context(self.request, task=self.name)
        duration = self._observe(TaskOutcome.FAILED, fire)
        if fire is not None:
            runtime_for(self.app).failed(fire, getattr(self.request, _ADMISSION, None), exc)
        log_event(
            logging.ERROR,
            "task.failed",
            job=fire.job if fire else None,
            task=self.name,
            id=task_id,
            seconds=duration,
            error=describe(exc),
        )

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        TASK_RETRIES.labels(self.name).inc()
        fire: FireContext | None = getattr(self.request, _FIRE, None)
        self._observe(TaskOutcome.RETRIED, fire)
        log_event(
            logging.WARNING,
            "task.retried",
            job=fire.job if fire else None,
            task=self.name,
            id=task_id,
            error=describe(exc),
        )

    def _skip(self, fire: FireContext, admission: Admission) -> dict[str, Any]:
        # A duplicate's marker must not become the fire's stored result (the first SUCCESS
        # is final in the backend, and the real run may still be going).
        self.request.ignore_result = True
        runtime_for(self.app).skipped(fire, admission)
        IDEMPOTENT_SKIPS.labels(self.name).inc()
        TASK_EXECUTIONS.labels(self.name, TaskOutcome.DUPLICATE).inc()
        if fire.job:
            JOB_RUNS.labels(fire.job, TaskOutcome.DUPLICATE).inc()
        log_event(
            logging.INFO,
            "task.duplicate",
            job=fire.job,
            task=self.name,
            id=fire.run_id,
            reason=admission.reason,
        )
        return {"status": TaskOutcome.DUPLICATE, "fire": fire.run_id, "reason": admission.reason}

    def _observe(self, status: TaskOutcome, fire: FireContext | None) -> float | None:
        """Count the execution by task and, for a fire of a job, by job (the Job
        dashboard's runs, success ratio and mean duration)."""
        TASK_EXECUTIONS.labels(self.name, status).inc()
        job = fire.job if fire is not None else None
        if job:
            JOB_RUNS.labels(job, status).inc()
        started = getattr(self.request, _STARTED, None)
        if started is None:
            return None
        duration = time.monotonic() - started
        TASK_DURATION.labels(self.name).observe(duration)
        if job and status != TaskOutcome.RETRIED:
            JOB_RUN_DURATION.labels(job).observe(duration)
        return round(duration, 6)


def log_event(level: int, event: str, **fields: Any) -> None:
    """One log line: the event name, then key=value pairs (values as redacted JSON), so
    that logs stay greppable and machine-readable without a logging dependency."""
    if not log.isEnabledFor(level):
        return
    parts = [event]
    for key, value in fields.items():
        if value is not None:
            text = json.dumps(redact(value), default=str, ensure_ascii=False)
            parts.append(f"{key}={text}")
    job = fields.get("job")
    log.log(level, " ".join(parts), extra=job_extra(job if isinstance(job, str) else None))
