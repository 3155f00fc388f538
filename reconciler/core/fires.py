"""What a fire is, as data: its deterministic id, its idempotency key, its payload.

The contract between the reconcile engine (which writes `apscheduler_jobs` rows) and the
dispatcher (which APScheduler calls when a slot is due):

- every row calls FIRE_CALLABLE, whatever the job: a refactor can never make APScheduler
  delete rows for want of an importable callable;
- the row's kwargs are `{"job": <name>, "payload": <FirePayload>}`, everything a fire
  needs, so firing reads nothing from the database but the ledger;
- the executor adds `scheduled_time` (an aware datetime) to the call.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from reconciler.spec.model import JobSpec

FIRE_CALLABLE = "reconciler.dispatch.fire:fire_job"
# Fixed namespace: the same (job, slot) gives the same id in every process, forever.
FIRE_NAMESPACE = uuid.UUID("6f1b2a4e-93c1-5d7e-a0f4-2b8c9d3e4f51")
_NAMESPACE_BYTES = FIRE_NAMESPACE.bytes


class FirePayload(TypedDict):
    task: str
    args: list[object]
    kwargs: dict[str, object]
    queue: str
    spec_hash: str
    revision: str | None
    idempotency_key: str | None  # a template; None = one key per fire (the fire id)
    expires_seconds: int | None
    time_limit_seconds: int | None
    retries: int
    retry_delay_seconds: int
    max_concurrent_runs: int
    misfire_grace_seconds: int


def fire_payload(spec: JobSpec, *, spec_hash: str, revision: str | None) -> FirePayload:
    # The fields read from the model's __dict__, where pydantic keeps their values: an
    # attribute of a model goes through its __getattr__ hook, unspecialised (a cold plan
    # of 10,000 jobs read 120,000 of them here; tests/unit/core/test_fields_read.py).
    return payload_of(spec.__dict__, spec_hash, revision)


def payload_of(fields: Mapping[str, Any], spec_hash: str, revision: str | None) -> FirePayload:
    """`fire_payload` of the spec whose `__dict__` is `fields`: for a caller that has it
    (core.state.scheduler_job, per job a plan writes; reading `__dict__` is itself an
    attribute of the model, ~400 instructions)."""
    # A literal: calling FirePayload (dict) with keywords cost twice as much, per job.
    return {
        "task": fields["task"],
        "args": list(fields["args"]),
        "kwargs": dict(fields["kwargs"]),
        "queue": fields["queue"],
        "spec_hash": spec_hash,
        "revision": revision,
        "idempotency_key": fields["idempotency_key"],
        "expires_seconds": fields["expires_seconds"],
        "time_limit_seconds": fields["time_limit_seconds"],
        "retries": fields["retries"],
        "retry_delay_seconds": fields["retry_delay_seconds"],
        "max_concurrent_runs": fields["max_concurrent_runs"],
        "misfire_grace_seconds": fields["misfire_grace_seconds"],
    }


def slot_utc(scheduled_time: datetime) -> datetime:
    """The slot as UTC, to the microsecond. Naive times are refused: a slot is an instant."""
    if scheduled_time.tzinfo is None:
        raise ValueError("a scheduled time must be timezone-aware")
    return scheduled_time.astimezone(UTC)


def fire_id(job: str, scheduled_time: datetime) -> str:
    """Deterministic id of one slot of one job: ledger key, Celery task id, default
    idempotency key. uuid5 over the job name and the slot's UTC ISO time.

    `str(uuid.uuid5(FIRE_NAMESPACE, name))`, computed as uuid5 computes it (SHA-1 of the
    namespace's bytes and the UTF-8 name, version and variant bits set) without building
    a UUID object: a third of the time, and the scheduler's thread makes one per fire
    (10,000 in the `:00` herd). tests/dispatch/test_request.py compares the two."""
    name = f"{job}@{slot_utc(scheduled_time).isoformat()}"
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def idempotency_key(template: str | None, *, job: str, scheduled_time: datetime) -> str:
    """The key a worker deduplicates on. Default: the fire id (exactly once per slot)."""
    if template is None:
        return fire_id(job, scheduled_time)
    slot = slot_utc(scheduled_time)
    return template.format(job=job, scheduled_time=slot.isoformat(), date=slot.date().isoformat())
