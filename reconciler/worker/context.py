"""What a delivered message says about its fire, read from the message headers (the
worker message contract, `core.message`). A message without our headers was sent by
hand: it runs, but without the ledger and the idempotency guard (`fire_context`
returns None).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from reconciler.core.message import FireHeaders

# Set by the worker's main process on a lost pool process's request (see worker.request).
LOST_PID_ATTRIBUTE = "reconciler_lost_pid"


@dataclass(frozen=True, kw_only=True, slots=True)
class FireContext:
    """One delivery of one fire."""

    run_id: str  # == Celery task id == job_runs.id
    task: str
    idempotency_key: str
    job: str | None
    revision: str | None
    scheduled_time: str | None
    max_retries: int
    retry_delay_seconds: int
    retries: int  # how many retries happened before this delivery
    redelivered: bool  # the broker delivered this message before (acks_late recovery)
    hostname: str
    pid: int  # the process executing it (the worker's main process names a lost child)


def header(request: Any, name: str) -> Any:
    """A custom header of the executing request. Celery exposes custom headers as request
    attributes (protocol 2) and, depending on the path a message took (a retry, an eager
    call), under `request.headers`; look in both."""
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name)
    return value


def fire_context(request: Any, *, task: str) -> FireContext | None:
    """The fire a Celery request executes, or None for a message sent without our headers."""
    headers = FireHeaders.read(lambda name: header(request, name))
    if headers is None or not request.id:
        return None
    delivery = request.delivery_info or {}
    return FireContext(
        run_id=str(request.id),
        task=task,
        idempotency_key=headers.idempotency_key,
        job=headers.job,
        revision=headers.revision,
        scheduled_time=headers.scheduled_time,
        max_retries=headers.max_retries,
        retry_delay_seconds=headers.retry_delay_seconds,
        retries=int(request.retries or 0),
        redelivered=bool(delivery.get("redelivered", False)),
        hostname=str(request.hostname or ""),
        pid=int(getattr(request, LOST_PID_ATTRIBUTE, None) or os.getpid()),
    )


def owner_value(*, task_id: str, hostname: str, pid: int | None = None) -> str:
    """The idempotency key's value while an execution holds it.

    Deterministic (no timestamp) so that the worker's main process can rebuild the exact
    value of a pool process it lost and release the key with a compare-and-delete."""
    return json.dumps(
        {
            "task_id": task_id,
            "status": "in_progress",
            "worker": hostname,
            "pid": os.getpid() if pid is None else pid,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def completed_value(*, task_id: str, hostname: str) -> str:
    return json.dumps(
        {"task_id": task_id, "status": "completed", "worker": hostname},
        sort_keys=True,
        separators=(",", ":"),
    )
