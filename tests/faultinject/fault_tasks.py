"""The task of the fault tests: it records each EXECUTION outside the ledger (one line
with its fire id appended to a file, O_APPEND: atomic for short lines), then works for
`seconds`. The tests count executions from that file, never from `job_runs`."""

from __future__ import annotations

import os
import time

from celery import shared_task

from reconciler.worker.base import BaseTask

TASK = "fault_tasks.tally"


@shared_task(base=BaseTask, bind=True, name=TASK)
def tally(self: BaseTask, path: str, seconds: float = 0.0) -> dict[str, object]:
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, f"{self.request.id} {os.getpid()}\n".encode())
    finally:
        os.close(descriptor)
    time.sleep(seconds)
    return {"slept": seconds}
