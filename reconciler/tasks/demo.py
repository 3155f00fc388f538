"""Small tasks for demos, tests and benchmarks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from reconciler.worker.base import BaseTask, PermanentTaskError


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.example_task")
def example_task(self: BaseTask, data: Any = None) -> dict[str, Any]:
    """The seed's example task: returns its input, when and where it ran."""
    return {
        "processed": True,
        "input": data,
        "timestamp": datetime.now(UTC).isoformat(),
        "worker": self.request.hostname,
    }


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.sleep_task")
def sleep_task(
    self: BaseTask, seconds: float = 1.0, ignore_soft_limit: bool = False
) -> dict[str, Any]:
    """Sleep `seconds` (a stand-in for slow work: time limits, crashes mid-task). With
    `ignore_soft_limit` it sleeps on through its soft time limit, as a task stuck in C
    code would, and only the hard limit stops it."""
    if not 0 <= float(seconds) <= 86_400:
        raise PermanentTaskError(f"seconds must be within 0..86400, not {seconds}")
    deadline = time.monotonic() + float(seconds)
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            time.sleep(remaining)
        except SoftTimeLimitExceeded:
            if not ignore_soft_limit:
                raise
    return {"slept": float(seconds), "worker": self.request.hostname}


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.fail_task")
def fail_task(self: BaseTask, message: str = "failed on purpose", permanent: bool = False) -> None:
    """Always raise: RuntimeError (retried per the job's policy) or, with `permanent`,
    PermanentTaskError (never retried)."""
    if permanent:
        raise PermanentTaskError(message)
    raise RuntimeError(message)


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.noop")
def noop(self: BaseTask) -> None:
    """Do nothing: measures the cost of the machinery around a task."""
