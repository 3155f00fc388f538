"""The Celery result backend on Redis, tolerant of Redis being down.

Results are a convenience (`AsyncResult.get`, the API's task view); the run ledger is
the record. Stock Celery fails a task whose result it cannot store, BEFORE its body
when `task_track_started` is on, and the failure's own store fails too: the message is
redelivered in a loop, a traceback each time, for as long as Redis is down. Here a
result that cannot be stored is counted (reconciler_result_store_failures_total) and
logged one WARNING line per minute; the task runs and is acknowledged, and its outcome
is in the ledger. A result lost that way is not stored later (the ledger has it).

Connection settings keep a dead Redis cheap: a 2 s connect timeout and one retry
(Celery's default is 20 retries, ~20 s per store).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.exceptions import OperationalError

from reconciler import metrics

log = logging.getLogger(__name__)

BACKEND = "reconciler.worker.results:TolerantRedisBackend"
LOG_EVERY_SECONDS = 60.0
_ERRORS = (redis.RedisError, BackendStoreError, OperationalError, OSError)


class TolerantRedisBackend(RedisBackend):
    """RedisBackend whose `store_result` never fails the task."""

    _lock = threading.Lock()
    _logged_at = -LOG_EVERY_SECONDS
    _unlogged = 0

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return super().store_result(task_id, result, state, traceback, request, **kwargs)
        except _ERRORS as error:
            _store_failed(state, error)
            return result


def _store_failed(state: str, error: BaseException) -> None:
    metrics.RESULT_STORE_FAILURES.inc()
    cls = TolerantRedisBackend
    with cls._lock:
        cls._unlogged += 1
        now = time.monotonic()
        if now - cls._logged_at < LOG_EVERY_SECONDS:
            return
        count, cls._unlogged, cls._logged_at = cls._unlogged, 0, now
    log.warning(
        "result backend unavailable: %d task results (last: %s) not stored, tasks run on: %s",
        count,
        state,
        " ".join(str(error).split())[:200],
    )


def backend_config(url: str) -> dict[str, Any]:
    """Celery settings for a Redis result backend at `url`."""
    return {
        "result_backend": f"{BACKEND}+{url}",
        "redis_socket_connect_timeout": 2,
        "redis_socket_timeout": 5,
        "redis_retry_on_timeout": False,
    }
