"""The rows of the one read model (`reconciler.core.status`), read by one module for every
reader: the CLI (sync connection), the API (async connection) and the daemon's gauges.

The statements are built once here; `read_status_rows` and `read_status_rows_async` run
the same ones and hand the same `StatusRows` to the pure `build_status`. On PostgreSQL,
`reconcile status` and the API's status read them as SQL text on the driver alone
(`store.lean_read`, contract-tested against these).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

if TYPE_CHECKING:  # the CLI's reads must not import the asyncio extension (and the ORM)
    from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.core.status import JobGroup, JobRow, StatusRows, late_before
from reconciler.core.vocabulary import APPLIED_OUTCOMES, SETTLED_OUTCOMES
from reconciler.store.lean_read import split_status_jobs, status_jobs_sql
from reconciler.store.tables import apscheduler_jobs as aps
from reconciler.store.tables import job_runs as runs
from reconciler.store.tables import quarantined_files as quarantine
from reconciler.store.tables import reconcile_runs, scheduled_jobs
from reconciler.store.tables import reconciler_instances as instances

jobs = scheduled_jobs


@dataclass(frozen=True, kw_only=True)
class JobSelector:
    """Which jobs to read: all conditions hold. `labels` are (key, value) pairs."""

    names: tuple[str, ...] | None = None
    status: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def where(self, dialect: str) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if self.names is not None:
            conditions.append(jobs.c.name.in_(self.names))
        if self.status is not None:
            conditions.append(jobs.c.status == self.status)
        conditions += [has_label(key, value, dialect) for key, value in self.labels]
        return conditions


def has_label(key: str, value: str, dialect: str) -> sa.ColumnElement[bool]:
    """The job's label `key` is `value`. On PostgreSQL by containment (`labels @>
    {key: value}`), which the GIN index ix_scheduled_jobs_labels answers: a label no job
    has is found absent at once, not after reading all 100,000 rows. Labels are strings
    (the spec's `dict[StrictStr, StrictStr]`), so containment and `labels ->> key =
    value` select the same jobs."""
    if dialect == "postgresql":
        return sa.type_coerce(jobs.c.labels, postgresql.JSONB).contains({key: value})
    return jobs.c.labels[key].as_string() == value


ALL_JOBS = JobSelector()
# JSON as text, decoded by orjson in job_row (the JSON type's stdlib decoding costs
# more than the query on 10,000 rows).
_Text = sa.Text()


def read_model(source: sa.FromClause = jobs, *, lateral: bool = False) -> sa.Select[Any]:
    """The read model's columns over `source`: `scheduled_jobs` itself, or a page of it
    (a subquery with its columns, `store.job_reads`), each job LEFT JOIN its scheduler
    row, its file's quarantine and its newest run.

    The newest run, by slot ((job_name, scheduled_time) is unique and indexed): with
    `lateral` (PostgreSQL reading every job: status, the daemon's gauges) one backward
    index probe per job; otherwise a join on max(scheduled_time), which SQLite probes
    per job, and PostgreSQL too under a LIMIT, but hashes every run when reading them all.
    """
    job = source.c
    last: sa.FromClause
    if lateral:
        last = (
            sa.select(runs.c.id, runs.c.status, runs.c.scheduled_time, runs.c.finished_at)
            .where(runs.c.job_name == job.name)
            .order_by(runs.c.scheduled_time.desc())
            .limit(1)
            .lateral("last_run")
        )
        newest_run: sa.ColumnElement[bool] = sa.true()
    else:
        last = runs.alias("last_run")
        newest_slot = (
            sa.select(sa.func.max(runs.c.scheduled_time))
            .where(runs.c.job_name == job.name)
            .scalar_subquery()
        )
        newest_run = sa.and_(last.c.job_name == job.name, last.c.scheduled_time == newest_slot)
    joined = (
        source.outerjoin(aps, aps.c.id == job.name)
        .outerjoin(quarantine, quarantine.c.path == job.source_file)
        .outerjoin(last, newest_run)
    )
    return sa.select(
        job.name,
        job.status,
        job.spec_hash,
        job.task,
        job.queue,
        sa.cast(job.labels, _Text).label("labels"),
        sa.cast(job.spec["schedule"], _Text).label("schedule"),
        job.spec["timezone"].as_string().label("timezone"),
        job.source_file,
        job.revision,
        job.updated_at,
        aps.c.id.label("aps_id"),
        aps.c.next_run_time,
        quarantine.c.path.label("quarantined_path"),
        last.c.id.label("last_run_id"),
        last.c.status.label("last_run_status"),
        last.c.scheduled_time.label("last_run_slot"),
        last.c.finished_at.label("last_run_finished"),
    ).select_from(joined)


_READ_ALL = {lateral: read_model(lateral=lateral) for lateral in (False, True)}


def jobs_statement(selector: JobSelector = ALL_JOBS, *, dialect: str = "") -> sa.Select[Any]:
    """Jobs in name order, each with its scheduler row, quarantine and newest run.
    `dialect`: the connection's (`postgresql` reads the newest run by LATERAL)."""
    statement = _READ_ALL[dialect == "postgresql"]
    return statement.where(*selector.where(dialect)).order_by(jobs.c.name)


def _latest_reconcile(*conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    order = (reconcile_runs.c.started_at.desc(), reconcile_runs.c.id.desc())
    return sa.select(reconcile_runs).where(*conditions).order_by(*order).limit(1)


_STATEMENTS: dict[str, sa.Executable] = {
    "instances": sa.select(instances).order_by(instances.c.instance),
    "last_reconcile": _latest_reconcile(),
    "last_applied": _latest_reconcile(reconcile_runs.c.outcome.in_(APPLIED_OUTCOMES)),
    "last_settled": _latest_reconcile(reconcile_runs.c.outcome.in_(SETTLED_OUTCOMES)),
    "foreign": sa.select(aps.c.id).where(
        ~sa.exists().where(jobs.c.name == aps.c.id)  # an anti-join: NOT IN hashes all
    ),
    "quarantined": sa.select(quarantine).order_by(quarantine.c.path),
}


def _status_jobs(dialect: str, now: datetime, details: bool) -> sa.TextClause:
    """The jobs' statement of the summary (store.lean_read.status_jobs_sql: groups
    counted by the database, the flagged jobs in full), as text on every connection."""
    statement = sa.text(status_jobs_sql(dialect, ":late_before", details=details))
    return statement.bindparams(late_before=late_before(now))


def read_status_rows(connection: Connection, *, now: datetime, details: bool = True) -> StatusRows:
    """`details`: the listed jobs' schedule and zone too (store.lean_read.status_jobs_sql)."""
    found = {
        key: connection.execute(statement).mappings().all()
        for key, statement in _STATEMENTS.items()
    }
    dialect = connection.dialect.name
    jobs_found = connection.execute(_status_jobs(dialect, now, details))
    return assemble(found, split_status_jobs(jobs_found, dialect))


async def read_status_rows_async(
    connection: AsyncConnection, *, now: datetime, details: bool = True
) -> StatusRows:
    if connection.dialect.name == "postgresql":
        # The driver's rows (store.lean_read, the same statements as text): at 100,000
        # jobs SQLAlchemy's rows cost more CPU than the query.
        from reconciler.store.lean_read import fetch_status_rows

        raw = await connection.get_raw_connection()
        return await fetch_status_rows(raw.driver_connection, now=now, details=details)
    found: dict[str, Sequence[Mapping[Any, Any]]] = {}
    for key, statement in _STATEMENTS.items():
        found[key] = (await connection.execute(statement)).mappings().all()
    dialect = connection.dialect.name
    jobs_found = await connection.execute(_status_jobs(dialect, now, details))
    return assemble(found, split_status_jobs(jobs_found, dialect))


def read_instances(connection: Connection) -> list[dict[str, Any]]:
    statement = sa.select(instances).order_by(instances.c.instance)
    return [dict(row) for row in connection.execute(statement).mappings()]


def read_job_rows(connection: Connection, selector: JobSelector = ALL_JOBS) -> list[JobRow]:
    statement = jobs_statement(selector, dialect=connection.dialect.name)
    return [job_row(row) for row in connection.execute(statement).mappings()]


# What the daemon's gauges need of every job (engine/gauges.py), read every 10 s: the
# inventory's status and spec, the scheduler's next fire and the newest ledger slot (an
# index probe per job); none of the JSON columns that `job_row` decodes.
_GAUGE_ROWS = (
    sa.select(
        jobs.c.name,
        jobs.c.status,
        jobs.c.spec_hash,
        jobs.c.updated_at,
        aps.c.next_run_time,
        sa.select(sa.func.max(runs.c.scheduled_time))
        .where(runs.c.job_name == jobs.c.name)
        .scalar_subquery()
        .label("last_run_slot"),
    )
    .select_from(jobs.outerjoin(aps, aps.c.id == jobs.c.name))
    .order_by(jobs.c.name)
)


GAUGE_CHUNK = 2_000


def read_gauge_rows(
    connection: Connection,
    *,
    stopping: Callable[[], bool] | None = None,
    chunk: int | None = None,
) -> list[tuple[Any, ...]] | None:
    """(name, status, spec_hash, updated_at, next_run_time, last_run_slot) of every job,
    in name order: the values `read_job_rows` gives for these fields.

    With `stopping`: streamed by a server-side cursor, `chunk` rows at a time (default
    GAUGE_CHUNK), and abandoned (None) when `stopping()` says so after any chunk. At
    100,000 jobs the whole read takes seconds of the daemon's main thread (tens under
    load), which a file event must not wait for."""
    if stopping is None:
        return [tuple(row) for row in connection.execute(_GAUGE_ROWS)]
    chunk = chunk or GAUGE_CHUNK
    rows: list[tuple[Any, ...]] = []
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(_GAUGE_ROWS)
    with result:
        for part in result.partitions(chunk):
            if stopping():
                return None
            rows += map(tuple, part)
    return None if stopping() else rows


async def read_job_rows_async(
    connection: AsyncConnection, selector: JobSelector = ALL_JOBS
) -> list[JobRow]:
    result = await connection.execute(jobs_statement(selector, dialect=connection.dialect.name))
    return [job_row(row) for row in result.mappings()]


def assemble(
    found: Mapping[str, Sequence[Mapping[Any, Any]]],
    jobs: tuple[Sequence[JobGroup], Sequence[JobRow]],
) -> StatusRows:
    return StatusRows(
        instances=[dict(row) for row in found["instances"]],
        last_reconcile=_first(found["last_reconcile"]),
        last_applied=_first(found["last_applied"]),
        last_settled=_first(found["last_settled"]),
        groups=jobs[0],
        flagged=jobs[1],
        foreign_rows=sorted(row["id"] for row in found["foreign"]),
        quarantined=[dict(row) for row in found["quarantined"]],
    )


def job_row(row: Mapping[Any, Any]) -> JobRow:
    return JobRow(
        name=row["name"],
        status=row["status"],
        spec_hash=row["spec_hash"],
        task=row["task"],
        queue=row["queue"],
        labels=_json(row["labels"]) or {},
        schedule=_json(row["schedule"]),
        timezone=row["timezone"],
        source_file=row["source_file"],
        revision=row["revision"],
        updated_at=row["updated_at"],
        scheduled=row["aps_id"] is not None,
        next_run_time=row["next_run_time"],
        quarantined=row["quarantined_path"] is not None,
        last_run_id=row["last_run_id"],
        last_run_status=row["last_run_status"],
        last_run_slot=row["last_run_slot"],
        last_run_finished=row["last_run_finished"],
    )


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _first(rows: Sequence[Mapping[Any, Any]]) -> dict[str, Any] | None:
    return dict(rows[0]) if rows else None
