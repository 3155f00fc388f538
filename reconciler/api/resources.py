"""The API's connections, opened at startup and closed at shutdown (the app's lifespan).

One async engine (asyncpg on PostgreSQL, aiosqlite on SQLite) in AUTOCOMMIT mode: the API
only reads, so no transaction is opened and none has to be rolled back when a connection
returns to the pool (one round trip per request saved). On PostgreSQL the sessions are
also read-only at the server (`default_transaction_read_only`), a guard against any write.
One Redis client for Celery results when the result backend is Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from reconciler.settings import Settings
from reconciler.store.db import async_url

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Seconds: a request must fail fast (503) rather than hang on a dead service.
CONNECT_TIMEOUT = 3.0
REDIS_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What the routes use. `results` is None when the result backend is not Redis."""

    settings: Settings
    engine: AsyncEngine
    results: aioredis.Redis | None

    async def aclose(self) -> None:
        await self.engine.dispose()
        if self.results is not None:
            await self.results.aclose()


def open_resources(settings: Settings) -> Resources:
    """Create the engine and clients. Nothing connects until the first request."""
    return Resources(
        settings=settings,
        engine=create_api_engine(settings.database_url),
        results=_redis_client(settings.result_backend),
    )


def create_api_engine(database_url: str) -> AsyncEngine:
    url = async_url(database_url)
    options: dict[str, Any] = {
        "isolation_level": "AUTOCOMMIT",
        "pool_recycle": 1800,
        # JSON columns are decoded per value: orjson does it in a fraction of json's time.
        "json_deserializer": orjson.loads,
    }
    if url.get_backend_name() == "postgresql":
        options.update(
            pool_size=10,
            max_overflow=10,
            pool_timeout=CONNECT_TIMEOUT,
            connect_args={
                "timeout": CONNECT_TIMEOUT,
                "command_timeout": 30,
                "server_settings": {
                    "application_name": "reconciler-api",
                    "default_transaction_read_only": "on",
                    # asyncpg prepares each statement once; PostgreSQL's generic plan of
                    # a label filter then walks every job for a label few or none have
                    # (the GIN index goes unused): plan with the request's values.
                    "plan_cache_mode": "force_custom_plan",
                    # No JIT: compiling /api/v1/reconciler's statement (its cost estimate
                    # counts an index probe per job) took longer than running it.
                    "jit": "off",
                },
            },
        )
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: object) -> None:
    # Readers wait for a writer (the daemon) instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _redis_client(url: str) -> aioredis.Redis | None:
    if not url.startswith(REDIS_SCHEMES):
        return None
    return aioredis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
