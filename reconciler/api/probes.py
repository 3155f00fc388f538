"""Readiness checks that really talk to the services, each timed in milliseconds.

    database   SELECT 1 through the API's own pool, and the schema at this release's head
    redis      PING on a fresh connection to RECONCILER_REDIS_URL (skipped if not Redis)
    broker     a full connection (AMQP handshake and login) with kombu, in a thread

Each check has PROBE_TIMEOUT seconds; a failure is reported by exception type and a
scrubbed message (no credentials), never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa
from kombu import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from reconciler.api.resources import REDIS_SCHEMES
from reconciler.api.scrub import scrub_text
from reconciler.errors import ConfigError
from reconciler.store.head_schema import behind_head

PROBE_TIMEOUT = 2.0


async def timed(check: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Run `check` under the timeout: {ok, latency_ms, error}."""
    started = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await check()
    except TimeoutError:
        error = f"no answer within {PROBE_TIMEOUT:g} s"
    except Exception as failure:  # noqa: BLE001 - a failed probe is data, not a crash
        error = f"{type(failure).__name__}: {scrub_text(str(failure)) or ''}"[:300]
    latency = round((time.perf_counter() - started) * 1000, 3)
    return {"ok": error is None, "latency_ms": latency, "error": error}


async def check_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
        # A release whose migration has not run yet reads columns that are not there:
        # not ready until `reconcile db upgrade` (the daemon's start) has run.
        behind = await connection.run_sync(behind_head)
        if behind is not None:
            raise ConfigError(behind)


async def check_redis(url: str) -> None:
    client = aioredis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
    )
    try:
        if not await client.ping():
            raise ConnectionError("PING was not answered with PONG")
    finally:
        await client.aclose()


async def check_broker(url: str) -> None:
    await asyncio.to_thread(_connect_broker, url)


def _connect_broker(url: str) -> None:
    connection = Connection(url, connect_timeout=PROBE_TIMEOUT)
    try:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=PROBE_TIMEOUT
        )
    finally:
        connection.release()


async def readiness(engine: AsyncEngine, *, redis_url: str, broker_url: str) -> dict[str, Any]:
    """All checks, concurrently. {status: ready|unready, checks: {name: {...}}}."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "database": lambda: check_database(engine),
        "broker": lambda: check_broker(broker_url),
    }
    if redis_url.startswith(REDIS_SCHEMES):
        checks["redis"] = lambda: check_redis(redis_url)
    results = await asyncio.gather(*(timed(check) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    ready = all(item["ok"] for item in report.values())
    return {"status": "ready" if ready else "unready", "checks": report}
