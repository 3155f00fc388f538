"""Reads for /api/v1/jobs and /api/v1/jobs/{name}."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import (
    as_utc,
    epoch_to_utc,
    quarantine_dict,
    run_dict,
    schedule_summary,
)
from reconciler.core.status import DRIFT_DETAILS, JobView, job_drift, view_job
from reconciler.store.status import JOB_COLUMNS, JOBS_FROM, job_row
from reconciler.store.tables import apscheduler_jobs as aps
from reconciler.store.tables import job_runs
from reconciler.store.tables import quarantined_files as quarantine
from reconciler.store.tables import scheduled_jobs as jobs

_WITH_SCHEDULER = jobs.outerjoin(aps, aps.c.id == jobs.c.name)


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """All conditions must hold. `labels` are (key, value) pairs, each must match."""

    status: str | None = None
    queue: str | None = None
    prefix: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def where(self) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if self.status is not None:
            conditions.append(jobs.c.status == self.status)
        if self.queue is not None:
            conditions.append(jobs.c.queue == self.queue)
        if self.prefix:
            conditions.append(jobs.c.name.startswith(self.prefix, autoescape=True))
        for key, value in self.labels:
            conditions.append(jobs.c.labels[key].as_string() == value)
        return conditions


async def list_jobs(
    connection: AsyncConnection,
    *,
    where: JobFilter,
    descending: bool,
    after: str | None,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` jobs in name order, after the name `after` (keyset) and `offset` rows.
    One query; the scheduler's next fire time comes from a LEFT JOIN."""
    statement = sa.select(*JOB_COLUMNS).select_from(JOBS_FROM).where(*where.where())
    if after is not None:
        statement = statement.where(jobs.c.name < after if descending else jobs.c.name > after)
    order = jobs.c.name.desc() if descending else jobs.c.name.asc()
    statement = statement.order_by(order).limit(limit)
    if offset:
        statement = statement.offset(offset)
    rows = (await connection.execute(statement)).mappings().all()
    now = datetime.now(UTC)
    return [_item(view_job(job_row(row), now=now)) for row in rows]


async def count_jobs(connection: AsyncConnection, *, where: JobFilter) -> int:
    statement = sa.select(sa.func.count()).select_from(jobs).where(*where.where())
    return int((await connection.execute(statement)).scalar_one())


def _item(view: JobView) -> dict[str, Any]:
    row = view.row
    return {
        "name": row.name,
        "task": row.task,
        "queue": row.queue,
        "status": row.status,
        "state": view.state,
        "quarantined": row.quarantined,
        "labels": row.labels,
        "schedule": schedule_summary(row.schedule, row.timezone),
        "next_fire_time": epoch_to_utc(row.next_run_time),
        "source_file": row.source_file,
        "revision": row.revision,
        "updated_at": as_utc(row.updated_at),
    }


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """One job as stored, with its scheduler row, its file's quarantine and its newest run
    (each None when there is none)."""

    job: dict[str, Any]
    scheduled: bool
    next_run_time: float | None
    quarantine: dict[str, Any] | None
    last_run: dict[str, Any] | None


_last = job_runs.alias("last_run")
_NEWEST_RUN_ID = (
    sa.select(job_runs.c.id)
    .where(job_runs.c.job_name == jobs.c.name)
    .order_by(job_runs.c.scheduled_time.desc(), job_runs.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
_DETAIL = sa.select(
    jobs,
    aps.c.id.label("aps_id"),
    aps.c.next_run_time,
    *(column.label(f"q_{column.name}") for column in quarantine.columns),
    *(column.label(f"r_{column.name}") for column in _last.columns),
).select_from(
    _WITH_SCHEDULER.outerjoin(quarantine, quarantine.c.path == jobs.c.source_file).outerjoin(
        _last, _last.c.id == _NEWEST_RUN_ID
    )
)


async def get_job(connection: AsyncConnection, name: str) -> JobRecord | None:
    """One query: the job LEFT JOIN its scheduler row, its file's quarantine and its newest
    run (a correlated subquery on the (job_name, scheduled_time) index)."""
    row = (await connection.execute(_DETAIL.where(jobs.c.name == name))).mappings().first()
    if row is None:
        return None
    return JobRecord(
        job={column.name: row[column.name] for column in jobs.columns},
        scheduled=row["aps_id"] is not None,
        next_run_time=row["next_run_time"],
        quarantine=_prefixed(row, "q_", quarantine, quarantine_dict),
        last_run=_prefixed(row, "r_", _last, run_dict),
    )


def _prefixed(
    row: Any, prefix: str, table: sa.FromClause, shape: Callable[[dict[str, Any]], Any]
) -> Any:
    """The joined table's columns (labelled `prefix` + name) shaped, or None if no match."""
    values = {column.name: row[prefix + column.name] for column in table.columns}
    primary = next(iter(table.primary_key)).name
    return None if values[primary] is None else shape(values)


def drift_of(status: str, *, scheduled: bool, next_run_time: float | None) -> dict[str, str] | None:
    """How the scheduler's row disagrees with the job's status (reconciler.core.status's
    vocabulary); None when they agree."""
    kind = job_drift(status, scheduled=scheduled, next_run_time=next_run_time)
    return None if kind is None else {"code": kind.value, "detail": DRIFT_DETAILS[kind]}
