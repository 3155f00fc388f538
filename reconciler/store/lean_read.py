"""The job rows of the read model, read with the database driver alone (sqlite3, asyncpg).

`reconcile get jobs` is a whole process a user waits for, and importing SQLAlchemy costs
more on this project's machines than reading and printing 10,000 jobs. This module is
the same query as `reconciler.store.status.jobs_statement` written as SQL text per
dialect, and hands back the same `JobRow`s; a contract test (tests/read/test_lean_read.py)
runs both on SQLite and PostgreSQL and compares every field. A URL this module cannot
read itself (a driver option in a SQLite URL, an unknown scheme) makes
`read_job_rows_lean` return None, and the caller falls back to SQLAlchemy, which also
reports an invalid URL the usual way.

On PostgreSQL the whole status read model (`StatusRows`: `store.status`'s statements) is
here too, on an asyncpg connection: `reconcile status` opens its own, the API's
`/api/v1/reconciler` uses its pool's (`store.status.read_status_rows_async`). At 100,000
jobs SQLAlchemy's rows and mappings cost more CPU than the query; the same contract test
compares the two reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson

from reconciler.core.status import JobRow, StatusRows
from reconciler.core.vocabulary import APPLIED_OUTCOMES, SETTLED_OUTCOMES
from reconciler.errors import ConfigError

NO_SCHEMA = "the database has no schema yet: run `reconcile db upgrade`"
Result = TypeVar("Result")

_COLUMNS = """
    j.name, j.status, j.spec_hash, j.task, j.queue, {labels}, {schedule}, {timezone},
    j.source_file, j.revision, j.updated_at, a.id, a.next_run_time, q.path,
    r.id, r.status, r.scheduled_time, r.finished_at"""
_JOINS = """
FROM scheduled_jobs AS j
LEFT JOIN apscheduler_jobs AS a ON a.id = j.name
LEFT JOIN quarantined_files AS q ON q.path = j.source_file"""
# The newest run of each job, by slot ((job_name, scheduled_time) is unique and indexed).
# PostgreSQL: one backward index probe per job (LATERAL); a join on max(scheduled_time)
# makes it hash all runs instead.
_POSTGRESQL = f"""
SELECT {
    _COLUMNS.format(
        labels="j.labels::text",
        schedule="(j.spec -> 'schedule')::text",
        timezone="j.spec ->> 'timezone'",
    )
}{_JOINS}
LEFT JOIN LATERAL (
    SELECT id, status, scheduled_time, finished_at FROM job_runs
    WHERE job_runs.job_name = j.name ORDER BY scheduled_time DESC LIMIT 1
) AS r ON true"""
# SQLite has no LATERAL; it probes the covering index for max(scheduled_time) per job.
_SQLITE = f"""
SELECT {
    _COLUMNS.format(
        labels="j.labels",
        schedule="json_quote(json_extract(j.spec, '$.schedule'))",
        timezone="json_extract(j.spec, '$.timezone')",
    )
}{_JOINS}
LEFT JOIN job_runs AS r ON r.job_name = j.name AND r.scheduled_time = (
    SELECT max(scheduled_time) FROM job_runs WHERE job_runs.job_name = j.name
)"""
_ORDER = " ORDER BY j.name"
# sqlite:///relative/path, sqlite:////absolute/path; no query string (driver options).
_SQLITE_URL = re.compile(r"sqlite(\+pysqlite)?:///(?P<path>[^?]+)")
_POSTGRESQL_URL = re.compile(r"postgresql(\+\w+)?://(?P<rest>.*)")


def read_job_rows_lean(url: str, *, labels: Sequence[tuple[str, str]] = ()) -> list[JobRow] | None:
    """Every job (with all `labels` as key=value), in name order; None when `url` is not
    one this module reads or names a server it cannot connect to (the caller then uses
    SQLAlchemy). Raises ConfigError when the database has no schema (or, for SQLite, no
    file)."""
    sqlite = _SQLITE_URL.fullmatch(url)
    if sqlite is not None and sqlite["path"] != ":memory:":
        return _read_sqlite(sqlite["path"], labels)
    postgresql = _POSTGRESQL_URL.fullmatch(url)
    if postgresql is not None:
        return _read_postgresql(f"postgresql://{postgresql['rest']}", labels)
    return None


def _read_sqlite(path: str, labels: Sequence[tuple[str, str]]) -> list[JobRow]:
    import sqlite3

    if not os.path.isfile(path):  # a reader must not create the file
        raise ConfigError(NO_SCHEMA)
    where = ["json_extract(j.labels, ?) = ?" for _ in labels]
    parameters = [part for key, value in labels for part in (f'$."{key}"', value)]
    connection = sqlite3.connect(path, timeout=10)  # waits out a writer, like the engine
    try:
        rows = connection.execute(_SQLITE + _where(where) + _ORDER, parameters).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            raise ConfigError(NO_SCHEMA) from None
        raise
    finally:
        connection.close()
    return [_job_row(row, _sqlite_moment) for row in rows]


def _read_postgresql(dsn: str, labels: Sequence[tuple[str, str]]) -> list[JobRow] | None:
    return _on_postgresql(dsn, lambda connection: fetch_job_rows(connection, labels))


def read_status_rows_lean(url: str) -> StatusRows | None:
    """`store.status.read_status_rows` on PostgreSQL with asyncpg alone; None for any
    other URL or a server it cannot connect to (the caller then uses SQLAlchemy). Raises
    ConfigError without a schema."""
    postgresql = _POSTGRESQL_URL.fullmatch(url)
    if postgresql is None:
        return None
    return _on_postgresql(f"postgresql://{postgresql['rest']}", fetch_status_rows)


def _on_postgresql(dsn: str, read: Callable[[Any], Awaitable[Result]]) -> Result | None:
    """`read` on a connection of its own; None when none could be opened."""
    # asyncpg, not psycopg: importing it costs half as much (the API's driver already).
    import asyncio

    import asyncpg

    async def fetch() -> Result | None:
        try:
            connection = await asyncpg.connect(dsn)
        except Exception:  # noqa: BLE001 - refused, unknown host or database, password...
            # SQLAlchemy's path then fails to connect too and reports it the usual way
            # ("cannot reach the database (RECONCILER_DATABASE_URL): ..."): one wording.
            return None
        try:
            return await read(connection)
        finally:
            await connection.close()

    try:
        return asyncio.run(fetch())
    except asyncpg.UndefinedTableError:
        raise ConfigError(NO_SCHEMA) from None


async def fetch_job_rows(connection: Any, labels: Sequence[tuple[str, str]] = ()) -> list[JobRow]:
    """Every job (with all `labels`) in name order, on an asyncpg `connection`."""
    # Containment, as store.status.has_label: the GIN index answers it.
    where = [
        f"j.labels @> jsonb_build_object(${2 * n + 1}::text, ${2 * n + 2}::text)"
        for n in range(len(labels))
    ]
    parameters = [part for pair in labels for part in pair]
    rows = await connection.fetch(_POSTGRESQL + _where(where) + _ORDER, *parameters)
    return [_job_row(row, _same) for row in rows]


# store.status._statements, as text (all columns of each table, as `select(table)`).
_LATEST_RECONCILE = "SELECT * FROM reconcile_runs {where} ORDER BY started_at DESC, id DESC LIMIT 1"
_OUTCOME_IN = "WHERE outcome = ANY($1::text[])"
# The JSON columns of those tables (store.tables: reconcile_runs.errors,
# quarantined_files.diagnostics), which asyncpg hands over as text.
_JSON_COLUMNS = frozenset({"errors", "diagnostics"})


async def fetch_status_rows(connection: Any) -> StatusRows:
    """`store.status.read_status_rows` on an asyncpg `connection`: the same statements,
    the same `StatusRows` (the contract test compares them)."""

    async def rows(sql: str, *parameters: Any) -> list[dict[str, Any]]:
        return [_decoded(row) for row in await connection.fetch(sql, *parameters)]

    async def latest(outcomes: Sequence[str] | None) -> dict[str, Any] | None:
        if outcomes is None:
            found = await rows(_LATEST_RECONCILE.format(where=""))
        else:
            found = await rows(_LATEST_RECONCILE.format(where=_OUTCOME_IN), list(outcomes))
        return found[0] if found else None

    return StatusRows(
        instances=await rows("SELECT * FROM reconciler_instances ORDER BY instance"),
        last_reconcile=await latest(None),
        last_applied=await latest(APPLIED_OUTCOMES),
        last_settled=await latest(SETTLED_OUTCOMES),
        jobs=await fetch_job_rows(connection),
        foreign_rows=sorted(
            row["id"]
            for row in await connection.fetch(
                "SELECT a.id FROM apscheduler_jobs AS a WHERE NOT EXISTS "
                "(SELECT 1 FROM scheduled_jobs AS j WHERE j.name = a.id)"
            )
        ),
        quarantined=await rows("SELECT * FROM quarantined_files ORDER BY path"),
    )


def _decoded(row: Any) -> dict[str, Any]:
    return {
        key: orjson.loads(value) if key in _JSON_COLUMNS and isinstance(value, str) else value
        for key, value in row.items()
    }


def _where(conditions: Iterable[str]) -> str:
    text = " AND ".join(conditions)
    return f" WHERE {text}" if text else ""


def _job_row(row: Sequence[Any], moment: Any) -> JobRow:
    return JobRow(
        name=row[0],
        status=row[1],
        spec_hash=row[2],
        task=row[3],
        queue=row[4],
        labels=orjson.loads(row[5]) or {},
        schedule=None if row[6] is None else orjson.loads(row[6]),
        timezone=row[7],
        source_file=row[8],
        revision=row[9],
        updated_at=moment(row[10]),
        scheduled=row[11] is not None,
        next_run_time=row[12],
        quarantined=row[13] is not None,
        last_run_id=row[14],
        last_run_status=row[15],
        last_run_slot=moment(row[16]),
        last_run_finished=moment(row[17]),
    )


def _sqlite_moment(text: str | None) -> datetime | None:
    # SQLAlchemy stores UTC as naive `YYYY-MM-DD HH:MM:SS.ffffff` text in SQLite and
    # reads it back naive; so does this.
    return None if text is None else datetime.fromisoformat(text)


def _same(value: Any) -> Any:
    return value
