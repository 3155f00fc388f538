"""The worker message contract: what a fire's Celery message carries besides the task's
own args and kwargs. Written by the dispatcher (`dispatch.request.send_task_arguments`),
read back by the worker (`worker.context.fire_context`); defined here once. Pure.

- The message's task id is the fire id (== `job_runs.id`).
- Custom headers, `FireHeaders`: the fire's idempotency key, its job, the revision that
  scheduled it, its slot (RFC 3339, UTC), and its retry policy. A message without
  `idempotency_key` was sent by hand: it runs, but without the ledger and the
  idempotency guard.

Headers cross a process boundary as JSON and a hand-sent message may carry anything:
`FireHeaders.read` tolerates `"3"` as well as `3` and never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_RETRY_DELAY_SECONDS = 10


@dataclass(frozen=True, kw_only=True, slots=True)
class FireHeaders:
    """The custom headers of one fire's message."""

    idempotency_key: str
    job: str | None
    revision: str | None
    scheduled_time: str | None  # the slot, RFC 3339 in UTC
    max_retries: int
    retry_delay_seconds: int

    def as_headers(self) -> dict[str, Any]:
        """The `headers` argument of `send_task`."""
        return {
            "idempotency_key": self.idempotency_key,
            "job": self.job,
            "revision": self.revision,
            "scheduled_time": self.scheduled_time,
            "max_retries": self.max_retries,
            "retry_delay_seconds": self.retry_delay_seconds,
        }

    @classmethod
    def read(cls, header: Callable[[str], Any]) -> FireHeaders | None:
        """The headers as `header(name)` finds them; None for a message without our
        headers (no idempotency key)."""
        key = header("idempotency_key")
        if not key:
            return None
        return cls(
            idempotency_key=str(key),
            job=_optional_str(header("job")),
            revision=_optional_str(header("revision")),
            scheduled_time=_optional_str(header("scheduled_time")),
            max_retries=_count(header("max_retries"), 0),
            retry_delay_seconds=_count(header("retry_delay_seconds"), DEFAULT_RETRY_DELAY_SECONDS),
        )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _count(value: Any, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default
