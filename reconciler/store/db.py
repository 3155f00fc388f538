"""Engines from the plain database URLs users write.

Users write `postgresql://user@host/db` or `sqlite:///path`; which driver serves the URL
is our business: psycopg 3 for sync work, asyncpg / aiosqlite for the async API.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection

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


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file (the default one lives in the state folder,
    which a first `db upgrade` or `apply` creates). Only writers call this: a reader of a
    missing database must not leave folders behind."""
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create the folder of {parsed.database}: {error}") from None


def create_sync_engine(url: str, **options: object) -> Engine:
    """A pooled engine. SQLite gets WAL and a busy timeout, so the daemon, the API and a
    CLI apply can share one file."""
    engine = sa.create_engine(sync_url(url), **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: DBAPIConnection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
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
    expect_new: bool = False,
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, for PostgreSQL and SQLite alike.

    On conflict every incoming column is written except `key` and those in `keep`, plus
    the `extra` assignments. A few rows: one executemany (psycopg pipelines it; a
    multi-row VALUES statement is slower: its compilation costs more than it saves).
    Many rows on PostgreSQL: COPY, faster again.

    `expect_new` (the caller expects no row with these keys): many rows are COPied
    straight into the table, in a savepoint; if a key exists after all (an add whose
    scheduler row outlived its inventory row, a foreign row with a declared name, a
    concurrent writer), the savepoint is rolled back and the rows are upserted as above,
    the COPY wasted. Same result either way."""
    if not values:
        return
    if connection.dialect.name == "postgresql" and len(values) >= BULK_ROWS:
        if expect_new and _copy_new_rows(connection, table, values):
            return
        _copy_upsert(connection, table, values, key=key, keep=keep, extra=extra)
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


def insert_rows(connection: Connection, table: sa.Table, values: list[dict[str, Any]]) -> None:
    """INSERT rows (dicts with the same keys) that cannot conflict: many rows on
    PostgreSQL by one binary COPY, others by one executemany."""
    if not values:
        return
    if connection.dialect.name == "postgresql" and len(values) >= BULK_ROWS:
        _copy_rows(connection, table.name, values)
        return
    connection.execute(sa.insert(table), values)


# From this many rows on, upsert goes through COPY (bench/RESULTS.md "Figures behind
# code choices").
BULK_ROWS = 500
_stage_numbers = itertools.count()


def _copy_new_rows(connection: Connection, table: sa.Table, values: list[dict[str, Any]]) -> bool:
    """COPY rows into `table` itself; False (and nothing written) if a key exists.
    Cheaper than COPY into a stage plus INSERT ... SELECT ... ON CONFLICT, when it works."""
    from psycopg.errors import UniqueViolation

    try:
        with connection.begin_nested():
            _copy_rows(connection, table.name, values)
    except UniqueViolation:  # raised by psycopg's own COPY, not wrapped by SQLAlchemy
        return False
    return True


def _copy_upsert(
    connection: Connection,
    table: sa.Table,
    values: list[dict[str, Any]],
    *,
    key: str,
    keep: frozenset[str],
    extra: Mapping[str, Any] | None,
) -> None:
    """COPY the rows into a temporary table, then one INSERT ... SELECT ... ON CONFLICT
    with exactly the conflict rule of the executemany path. The stage table is created
    from the target's own column types (so COPY's text input is parsed as the target
    parses it) and dropped at commit."""
    from sqlalchemy.dialects.postgresql import insert

    columns = list(values[0])
    stage = f"reconciler_stage_{next(_stage_numbers)}"
    quoted = ", ".join(f'"{column}"' for column in columns)
    connection.exec_driver_sql(
        f'CREATE TEMPORARY TABLE "{stage}" ON COMMIT DROP AS '
        f'SELECT {quoted} FROM "{table.name}" WITH NO DATA'
    )
    _copy_rows(connection, stage, values)
    staged = sa.table(stage, *(sa.column(column) for column in columns))
    statement = insert(table).from_select(columns, sa.select(*(staged.c[c] for c in columns)))
    changes = {
        column: statement.excluded[column]
        for column in columns
        if column != key and column not in keep
    }
    changes.update(extra or {})
    connection.execute(statement.on_conflict_do_update(index_elements=[table.c[key]], set_=changes))


def _copy_rows(connection: Connection, table_name: str, values: list[dict[str, Any]]) -> None:
    """Binary COPY of `values` (dicts with the same keys) into the named table.

    Binary: a pickled job state travels as its bytes, not as hex text twice its size.
    Binary needs each column's type, read from the catalog."""
    from psycopg.types.json import set_json_dumps

    columns = list(values[0])
    types = list(
        connection.execute(
            sa.text(
                "SELECT a.atttypid"
                " FROM unnest(CAST(:columns AS text[])) WITH ORDINALITY AS c(name, n)"
                " JOIN pg_attribute a"
                " ON a.attrelid = CAST(:table AS regclass) AND a.attname = c.name"
                " ORDER BY c.n"
            ),
            {"columns": columns, "table": f'"{table_name}"'},
        ).scalars()
    )
    if len(types) != len(columns):
        raise ValueError(f"COPY into {table_name}: unknown columns among {columns}")
    quoted = ", ".join(f'"{column}"' for column in columns)
    cursor: Any = connection.connection.cursor()  # psycopg's, for COPY
    try:
        set_json_dumps(json_text, context=cursor)
        with cursor.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.set_types(types)
            for row in values:
                copy.write_row([row[column] for column in columns])
    finally:
        cursor.close()


def json_text(value: Any) -> str | bytes:
    """JSON for the COPY of a json/jsonb column (orjson: a fraction of json's time), as
    the UTF-8 bytes psycopg sends (its dumper encodes a str: orjson's own bytes are those
    already, not decoded to be encoded again). orjson writes NaN and infinities as null,
    json refuses them here: validation keeps them out of specs (spec.model), and a
    silent null would change a spec."""
    try:
        return orjson.dumps(value)
    except TypeError:  # what orjson refuses (integers beyond 64 bits) json still writes
        return json.dumps(value, allow_nan=False)


def json_bytes(value: Any) -> bytes:
    """`json_text(value)` as bytes: the JSON of a jsonb column's binary COPY data
    (store.binary_copy.jsonb_field), the very bytes psycopg's dumper sends."""
    text = json_text(value)
    return text if isinstance(text, bytes) else text.encode()


def _dialect_insert(connection: Connection) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def has_schema(bind: Connection | Engine) -> bool:
    """Whether the database has our tables yet (`reconcile db upgrade` ran)."""
    return bool(sa.inspect(bind).has_table("scheduled_jobs"))
