"""MainProcessRequest: what the worker's MAIN process does for a message it handed to a pool
process (Celery's `Request`, customised through `BaseTask.Request`).

Two events are only ever seen here, never in the pool process:
- a HARD time limit: billiard kills the pool process, Celery calls the task's on_failure
  in the main process. We put the message's own request on the task's request stack for
  that call, so that on_failure finds the fire's headers and records the failure, and
  mark it with the lost process's pid so that its idempotency key can be released.
- a LOST pool process (killed, out of memory): with reject_on_worker_lost the message is
  requeued; we release the fire's key first so that the redelivery runs at once instead
  of waiting for the key's lease to lapse.

Time limits a message asks for are capped at the app's limits (hard 25 min / soft 24 min
by default): longer runs would outlive RabbitMQ's consumer timeout and be redelivered
forever. The cap is logged. A hard limit always gets a soft one below it (5 %, at most
60 s, earlier): the task gets SoftTimeLimitExceeded first, and a task that ignores it is
killed at the hard limit.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from reconciler.worker.context import LOST_PID_ATTRIBUTE, fire_context
from reconciler.worker.runtime import runtime_for

log = logging.getLogger(__name__)


class MainProcessRequest(Request):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.time_limits = self._capped_time_limits()

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if soft:
            super().on_timeout(soft, timeout)
            return
        context = self._lost_context()
        self.task.request_stack.push(context)
        try:
            super().on_timeout(soft, timeout)
        finally:
            self.task.request_stack.pop()

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exception = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exception, WorkerLostError):
            fire = fire_context(self._lost_context(), task=self.task.name)
            if fire is not None:
                runtime_for(self.task.app).release_lost(fire)
        return super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )

    def _lost_context(self) -> Any:
        context = self._context
        setattr(context, LOST_PID_ATTRIBUTE, self.worker_pid)
        return context

    def _capped_time_limits(self) -> tuple[float | None, float | None]:
        hard, soft = self.time_limits or (None, None)
        conf = self._app.conf if self._app is not None else self.task.app.conf
        limits = _normalize(_cap(hard, conf.task_time_limit), _cap(soft, conf.task_soft_time_limit))
        if limits[0] != hard:
            log.warning(
                "task %s[%s] asked for a %s s time limit, capped to %s s",
                self.name,
                self.id,
                hard,
                limits[0],
            )
        return limits


def _normalize(hard: float | None, soft: float | None) -> tuple[float | None, float | None]:
    """A hard limit without a soft one below it gets one just below it. Celery would
    otherwise take the app's soft default (24 min), and the pool arms the hard timer only
    once the soft one fired: a 2 s hard limit would act after 24 min."""
    if hard is not None and (soft is None or soft >= hard):
        soft = max(hard * 0.95, hard - 60)
    return hard, soft


def _cap(value: float | None, limit: float | None) -> float | None:
    if value is None or limit is None:
        return value
    return min(value, limit)
