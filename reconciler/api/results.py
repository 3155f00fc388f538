"""Celery task state and result, read from the Redis result backend.

Celery's Redis backend stores `celery-task-meta-<task id>` as JSON: status, result,
traceback, date_done (and more with result_extended). Keys carry the `redis_prefix`
setting in front, as the worker's `global_keyprefix` does. Celery calls every unknown id
PENDING; here an id is PENDING only when the ledger has a row for it, else unknown (404).
Results and exception messages are redacted; tracebacks are never shown.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reconciler.api.problems import ApiProblem
from reconciler.api.scrub import redact_deep
from reconciler.core.moments import parse_moment

RESULT_KEY_PREFIX = "celery-task-meta-"
READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
BACKEND_DOWN = "urn:reconciler:problem:result-backend-unavailable"


async def read_task_meta(
    client: aioredis.Redis | None, *, prefix: str, task_id: str
) -> dict[str, Any] | None:
    """The stored meta of `task_id`, or None if the backend has none (or is not Redis).
    Raises ApiProblem(503) when Redis does not answer."""
    if client is None:
        return None
    try:
        raw = await client.get(f"{prefix}{RESULT_KEY_PREFIX}{task_id}")
    except (RedisError, OSError):
        raise ApiProblem(503, "the result backend is unavailable", type_=BACKEND_DOWN) from None
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeError):
        return {"status": "UNKNOWN", "result": None}
    return meta if isinstance(meta, dict) else {"status": "UNKNOWN", "result": None}


def celery_view(task_id: str, meta: dict[str, Any] | None) -> dict[str, Any]:
    """The CeleryResult shape of a stored meta (None: PENDING)."""
    meta = meta or {}
    state = str(meta.get("status") or "PENDING")
    return {
        "task_id": task_id,
        "state": state,
        "ready": state in READY_STATES,
        "successful": state == "SUCCESS",
        "date_done": _parse_time(meta.get("date_done")),
        "result": _result(state, meta.get("result")),
    }


def _result(state: str, value: Any) -> Any:
    if state in ("FAILURE", "RETRY") and isinstance(value, dict) and "exc_type" in value:
        # Celery's serialised exception; exc_module and the traceback stay out.
        return redact_deep(
            {"exc_type": value.get("exc_type"), "exc_message": value.get("exc_message")}
        )
    return redact_deep(value)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_moment(value)
    except ValueError:
        return None
