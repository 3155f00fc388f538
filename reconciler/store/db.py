"""Engines from the plain database URLs users write.

Users write `postgresql://user@host/db` or `sqlite:///path`; which driver serves the URL
is our business: psycopg 3 for sync work, asyncpg / aiosqlite for the async API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from reconciler.errors import ConfigError

_SYNC_DRIVERS = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite+pysqlite"}
_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def _with_driver(url: str, drivers: dict[str, str]) -> URL:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as error:
        raise ConfigError(f"invalid database URL: {error}") from None
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ConfigError(f"unsupported database {backend!r}: use postgresql:// or sqlite:///")
    return parsed.set(drivername=drivers[backend])


def sync_url(url: str) -> URL:
    return _with_driver(url, _SYNC_DRIVERS)


def async_url(url: str) -> URL:
    return _with_driver(url, _ASYNC_DRIVERS)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_sync_engine(url: str, **options: object) -> Engine:
    """A pooled engine. SQLite gets WAL and a busy timeout, so the daemon, the API and a
    CLI apply can share one file."""
    engine = sa.create_engine(sync_url(url), **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def upsert(
    connection: Connection,
    table: sa.Table,
    values: list[dict[str, Any]],
    *,
    key: str,
    keep: frozenset[str] = frozenset(),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, for PostgreSQL and SQLite alike.

    On conflict every incoming column is written except `key` and those in `keep`, plus
    the `extra` assignments. One executemany (psycopg pipelines it): a multi-row VALUES
    statement was measured slower here, its compilation costs more than it saves."""
    if not values:
        return
    statement = _dialect_insert(connection)(table)
    changes = {
        column: statement.excluded[column]
        for column in values[0]
        if column != key and column not in keep
    }
    changes.update(extra or {})
    connection.execute(
        statement.on_conflict_do_update(index_elements=[table.c[key]], set_=changes), values
    )


def _dialect_insert(connection: Connection) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert
