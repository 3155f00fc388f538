"""One fire as an immutable value, the exact Celery publish call it becomes, and its
first ledger row.

Pure: no I/O. The Dispatcher builds a FireRequest per slot in the scheduler's thread
(cheap: a uuid5 and a few datetimes), the pipeline threads record and publish it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from reconciler.core.fires import FirePayload, fire_id, idempotency_key, slot_utc
from reconciler.core.message import FireHeaders

Kind = Literal["fire", "missed"]


@dataclass(frozen=True, slots=True)
class FireRequest:
    """A slot to record (and, for kind 'fire', to publish).

    `id` is the fire id: ledger key and Celery task id. `slot` is UTC. `reason` is set
    for kind 'missed' (misfire, coalesced, catch_up_limit).
    """

    id: str
    job: str
    slot: datetime
    payload: FirePayload
    idempotency_key: str
    fired_at: datetime
    kind: Kind = "fire"
    reason: str | None = None
    # A slot due when this leader took over (Dispatcher.take_over), which its fenced
    # predecessor may have accepted: found in the ledger, the fire is handed over, not
    # counted as a duplicate (batch.record_batch).
    inherited: bool = field(default=False, compare=False)
    # Set by the retrier: the ledger row exists (do not insert it again) and has seen
    # `attempts` failed publishes (for the backoff).
    recorded: bool = field(default=False, compare=False)
    attempts: int = field(default=0, compare=False)

    @property
    def expires_at(self) -> datetime | None:
        seconds = self.payload["expires_seconds"]
        return None if seconds is None else self.slot + timedelta(seconds=seconds)

    @property
    def lateness_seconds(self) -> float:
        return (self.fired_at - self.slot).total_seconds()


def make_request(
    *,
    job: str,
    payload: FirePayload,
    scheduled_time: datetime,
    now: datetime,
    kind: Kind = "fire",
    reason: str | None = None,
) -> FireRequest:
    """Build the request for one slot. Raises ValueError for a naive scheduled_time."""
    slot = slot_utc(scheduled_time)
    key = fire_id(job, slot)
    template = payload["idempotency_key"]
    return FireRequest(
        id=key,
        job=job,
        slot=slot,
        payload=payload,
        # The default key IS the fire id (core.fires.idempotency_key): not hashed twice.
        idempotency_key=key
        if template is None
        else idempotency_key(template, job=job, scheduled_time=slot),
        fired_at=now,
        kind=kind,
        reason=reason,
    )


def soft_time_limit(time_limit: int | None) -> float | None:
    """A second below the hard limit, so the task can clean up (90% for a 1 s limit)."""
    if time_limit is None:
        return None
    return float(time_limit - 1) if time_limit > 1 else time_limit * 0.9


def send_task_arguments(request: FireRequest) -> dict[str, Any]:
    """Keyword arguments of `celery_app.send_task` for this fire. The task id and the
    headers are the worker message contract (`core.message`)."""
    payload = request.payload
    time_limit = payload["time_limit_seconds"]
    return {
        "name": payload["task"],
        "args": list(payload["args"]),
        "kwargs": dict(payload["kwargs"]),
        "queue": payload["queue"],
        "task_id": request.id,
        # The name monitoring shows (Flower, `celery events`, worker logs): which JOB
        # fired, and its task; the worker still runs `name`.
        "shadow": f"{request.job} ({payload['task']})",
        "headers": FireHeaders(
            idempotency_key=request.idempotency_key,
            job=request.job,
            revision=payload["revision"],
            scheduled_time=request.slot.isoformat(),
            max_retries=payload["retries"],
            retry_delay_seconds=payload["retry_delay_seconds"],
        ).as_headers(),
        "expires": request.expires_at,
        "time_limit": time_limit,
        "soft_time_limit": soft_time_limit(time_limit),
    }


def ledger_row(
    request: FireRequest,
    *,
    status: str,
    now: datetime,
    next_attempt_at: datetime | None,
    reason: str | None = None,
) -> dict[str, object]:
    """The request's `job_runs` row, as first written (`store.ledger.insert_rows`)."""
    payload = request.payload
    return {
        "id": request.id,
        "job_name": request.job,
        "scheduled_time": request.slot,
        "status": status,
        "reason": reason if reason is not None else request.reason,
        "task": payload["task"],
        "queue": payload["queue"],
        "idempotency_key": request.idempotency_key,
        "revision": payload["revision"],
        "fired_at": request.fired_at,
        "lateness_seconds": request.lateness_seconds,
        "publish_attempts": 0,
        "next_attempt_at": next_attempt_at,
        "expires_at": request.expires_at,
        "updated_at": now,
    }
