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
`/api/v1/reconciler` uses its pool's (`store.status.read_status_rows_async`); the same
contract test compares the two reads. Its jobs are one statement (`status_jobs_sql`, run
as text by `store.status` too): the database counts the jobs by the facts their state
and drift depend on and hands over in full only the failing, late and drifted ones. At
100,000 jobs reading every job's row and judging it in Python cost 1.7 s of CPU per
request (tests/read/test_status_aggregates.py compares the two over random job sets).
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson

from reconciler.core.status import JobGroup, JobRow, StatusRows, late_before
from reconciler.core.vocabulary import (
    APPLIED_OUTCOMES,
    FAILED_RUN_STATUSES,
    SETTLED_OUTCOMES,
    JobStatus,
)
from reconciler.errors import ConfigError

NO_SCHEMA = "the database has no schema yet: run `reconcile db upgrade`"
Result = TypeVar("Result")

_COLUMNS = """
    j.name, j.status, j.spec_hash, j.task, j.queue, {labels}, {schedule}, {timezone},
    j.source_file, j.revision, j.updated_at, {last}"""
_OTHERS = "a.id, a.next_run_time, q.path, r.id, r.status, r.scheduled_time, r.finished_at"
_JOINS = """
FROM scheduled_jobs AS j
LEFT JOIN apscheduler_jobs AS a ON a.id = j.name
LEFT JOIN quarantined_files AS q ON q.path = j.source_file"""
# The JSON columns, as text, per dialect.
_JSON = {
    "postgresql": {
        "labels": "j.labels::text",
        "schedule": "(j.spec -> 'schedule')::text",
        "timezone": "j.spec ->> 'timezone'",
    },
    "sqlite": {
        "labels": "j.labels",
        "schedule": "json_quote(json_extract(j.spec, '$.schedule'))",
        "timezone": "json_extract(j.spec, '$.timezone')",
    },
}
# The newest run of each job, by slot ((job_name, scheduled_time) is unique and indexed).
# PostgreSQL: one backward index probe per job (LATERAL); a join on max(scheduled_time)
# makes it hash all runs instead. SQLite has no LATERAL; it probes the covering index
# for max(scheduled_time) per job.
_NEWEST_RUN = {
    "postgresql": """
LEFT JOIN LATERAL (
    SELECT id, status, scheduled_time, finished_at FROM job_runs
    WHERE job_runs.job_name = j.name ORDER BY scheduled_time DESC LIMIT 1
) AS r ON true""",
    "sqlite": """
LEFT JOIN job_runs AS r ON r.job_name = j.name AND r.scheduled_time = (
    SELECT max(scheduled_time) FROM job_runs WHERE job_runs.job_name = j.name
)""",
}
_POSTGRESQL, _SQLITE = (
    "\nSELECT " + _COLUMNS.format(last=_OTHERS, **_JSON[dialect]) + _JOINS + _NEWEST_RUN[dialect]
    for dialect in ("postgresql", "sqlite")
)
_ORDER = " ORDER BY j.name"


def _words(words: Iterable[str]) -> str:
    return ", ".join(f"'{word}'" for word in words)  # the vocabulary's constants only


_ACTIVE, _PAUSED, _COMPLETED = (f"'{status}'" for status in JobStatus)
# The jobs of the status summary in one statement (one snapshot): per job only the facts
# its state and drift depend on (core.status.JobGroup), its newest run's status read by
# one index-only probe (ix_job_runs_newest holds the status); the jobs that may be
# failing or late or whose scheduler row drifted (`_FLAGGED`, core.status.job_drift's
# cases) come back in full, as the read model's rows (their columns and newest run read
# again by name), the others only counted by their facts. 100,000 jobs are then a few
# group rows and the flagged jobs, not 100,000 rows to decode and judge; and the pass
# over every job reads no wide column (the spec, the run's id) it then drops.
_PER_JOB = """
WITH per_job AS (
    SELECT j.name, j.status, a.next_run_time, q.path AS quarantined_path,
        CASE WHEN q.path IS NULL THEN 0 ELSE 1 END AS quarantined,
        CASE WHEN a.id IS NULL THEN 0 ELSE 1 END AS scheduled,
        CASE WHEN a.next_run_time IS NULL THEN 0 ELSE 1 END AS due,
        CASE WHEN j.status = {active} AND a.next_run_time < {late_before} THEN 1 ELSE 0
            END AS overdue,
        CASE WHEN q.path IS NULL AND j.status NOT IN ({paused}, {completed})
            AND (SELECT r.status FROM job_runs AS r WHERE r.job_name = j.name
                 ORDER BY r.scheduled_time DESC LIMIT 1) IN ({failed}) THEN 1 ELSE 0
            END AS failed
    {joins}
)"""
_FLAGGED = f"""(failed = 1 OR (overdue = 1 AND quarantined = 0)
    OR (status = {_COMPLETED} AND due = 1) OR (status <> {_COMPLETED} AND scheduled = 0)
    OR (status = {_ACTIVE} AND due = 0) OR (status = {_PAUSED} AND due = 1))"""
_GROUP = "status, quarantined, scheduled, due, overdue, failed"
# The flagged jobs' scheduler row and quarantine, as per_job read them (the row's id is
# the job's name), and their newest run.
_CARRIED = """CASE WHEN p.scheduled = 1 THEN p.name END, p.next_run_time, p.quarantined_path,
    r.id, r.status, r.scheduled_time, r.finished_at"""
_JOB_COLUMNS = 18  # of _COLUMNS


def status_jobs_sql(dialect: str, late_before: str, *, details: bool = True) -> str:
    """The statement (PostgreSQL or SQLite), `late_before` its parameter's placeholder:
    rows of 7 + _JOB_COLUMNS columns, first the groups (`_GROUP`, count; no job), then
    the flagged jobs (the read model's columns) in name order. `split_status_jobs`
    reads them. The summary shows no labels: they are not read (NULL, `{}` in the
    JobRow); without `details` neither are the schedule and zone (NULL, None: only the
    text output shows them, the JSON and the API do not; each costs the spec's
    decompression in the database and a decoding here, per listed job)."""
    per_job = _PER_JOB.format(
        active=_ACTIVE,
        paused=_PAUSED,
        completed=_COMPLETED,
        failed=_words(FAILED_RUN_STATUSES),
        late_before=late_before,
        joins=_JOINS,
    )
    no_job = ", ".join(["NULL"] * _JOB_COLUMNS)
    no_group = ", ".join(["NULL"] * 7)
    shown = _JSON[dialect] if details else {"schedule": "NULL", "timezone": "NULL"}
    columns = _COLUMNS.format(last=_CARRIED, **{**shown, "labels": "NULL"})
    return (
        per_job
        + f"\nSELECT {_GROUP}, count(*) AS jobs, {no_job} FROM per_job"
        + f"\nWHERE NOT {_FLAGGED} GROUP BY {_GROUP}"
        + f"\nUNION ALL\nSELECT {no_group}, {columns}"
        + f"\nFROM (SELECT * FROM per_job WHERE {_FLAGGED}) AS p"
        + "\nJOIN scheduled_jobs AS j ON j.name = p.name"
        + _NEWEST_RUN[dialect]
        + "\nORDER BY 8"  # the job's name (NULL in the groups)
    )


def split_status_jobs(
    rows: Iterable[Sequence[Any]], dialect: str
) -> tuple[list[JobGroup], list[JobRow]]:
    """The groups and the flagged jobs of `status_jobs_sql`'s rows, as the driver hands
    them over (SQLite's moments: naive text, as this module's SQLite reader)."""
    moment = _sqlite_moment if dialect == "sqlite" else _same
    groups, flagged = [], []
    for row in rows:
        if row[7] is None:
            status, quarantined, scheduled, due, overdue, failed, jobs = row[:7]
            groups.append(
                JobGroup(
                    status=status,
                    quarantined=bool(quarantined),
                    scheduled=bool(scheduled),
                    due=bool(due),
                    overdue=bool(overdue),
                    failed=bool(failed),
                    jobs=int(jobs),
                )
            )
        else:
            flagged.append(_job_row(row[7:], moment))
    return groups, flagged


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


def read_status_rows_lean(url: str, *, now: datetime, details: bool = True) -> StatusRows | None:
    """`store.status.read_status_rows` on PostgreSQL with asyncpg alone; None for any
    other URL or a server it cannot connect to (the caller then uses SQLAlchemy). Raises
    ConfigError without a schema."""
    postgresql = _POSTGRESQL_URL.fullmatch(url)
    if postgresql is None:
        return None
    dsn = f"postgresql://{postgresql['rest']}"
    return _on_postgresql(
        dsn, lambda connection: fetch_status_rows(connection, now=now, details=details)
    )


def _on_postgresql(dsn: str, read: Callable[[Any], Awaitable[Result]]) -> Result | None:
    """`read` on a connection of its own; None when none could be opened."""
    # asyncpg, not psycopg: importing it costs half as much (the API's driver already).
    import asyncio

    import asyncpg

    async def fetch() -> Result | None:
        try:
            # No JIT: compiling the status statement (its cost estimate counts a probe
            # per job) took longer than running it.
            connection = await asyncpg.connect(dsn, server_settings={"jit": "off"})
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


async def fetch_status_rows(connection: Any, *, now: datetime, details: bool = True) -> StatusRows:
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

    statement = status_jobs_sql("postgresql", "$1", details=details)
    jobs = await connection.fetch(statement, late_before(now))
    groups, flagged = split_status_jobs(jobs, "postgresql")
    return StatusRows(
        instances=await rows("SELECT * FROM reconciler_instances ORDER BY instance"),
        last_reconcile=await latest(None),
        last_applied=await latest(APPLIED_OUTCOMES),
        last_settled=await latest(SETTLED_OUTCOMES),
        groups=groups,
        flagged=flagged,
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
        labels=(row[5] is not None and orjson.loads(row[5])) or {},  # NULL: not read
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
