"""Reads for /api/v1/jobs and /api/v1/jobs/{name}."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import as_utc, epoch_to_utc, quarantine_dict, schedule_summary
from reconciler.store.tables import apscheduler_jobs as aps
from reconciler.store.tables import quarantined_files as quarantine
from reconciler.store.tables import scheduled_jobs as jobs

_WITH_SCHEDULER = jobs.outerjoin(aps, aps.c.id == jobs.c.name)
_LIST_COLUMNS = (
    jobs.c.name,
    jobs.c.task,
    jobs.c.queue,
    jobs.c.status,
    jobs.c.labels,
    jobs.c.spec["schedule"].label("schedule"),
    jobs.c.spec["timezone"].as_string().label("timezone"),
    jobs.c.source_file,
    jobs.c.revision,
    jobs.c.updated_at,
    aps.c.next_run_time,
)


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
    statement = sa.select(*_LIST_COLUMNS).select_from(_WITH_SCHEDULER).where(*where.where())
    if after is not None:
        statement = statement.where(jobs.c.name < after if descending else jobs.c.name > after)
    order = jobs.c.name.desc() if descending else jobs.c.name.asc()
    statement = statement.order_by(order).limit(limit)
    if offset:
        statement = statement.offset(offset)
    rows = (await connection.execute(statement)).mappings().all()
    return [_item(row) for row in rows]


async def count_jobs(connection: AsyncConnection, *, where: JobFilter) -> int:
    statement = sa.select(sa.func.count()).select_from(jobs).where(*where.where())
    return int((await connection.execute(statement)).scalar_one())


def _item(row: Any) -> dict[str, Any]:
    return {
        "name": row["name"],
        "task": row["task"],
        "queue": row["queue"],
        "status": row["status"],
        "labels": row["labels"],
        "schedule": schedule_summary(row["schedule"], row["timezone"]),
        "next_fire_time": epoch_to_utc(row["next_run_time"]),
        "source_file": row["source_file"],
        "revision": row["revision"],
        "updated_at": as_utc(row["updated_at"]),
    }


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """One job as stored, with its scheduler row (if any) and its file's quarantine (if any)."""

    job: dict[str, Any]
    scheduled: bool
    next_run_time: float | None
    quarantine: dict[str, Any] | None


async def get_job(connection: AsyncConnection, name: str) -> JobRecord | None:
    """One query: the job LEFT JOIN its scheduler row LEFT JOIN its file's quarantine."""
    statement = (
        sa.select(
            jobs,
            aps.c.id.label("aps_id"),
            aps.c.next_run_time,
            quarantine.c.path.label("q_path"),
            quarantine.c.diagnostics.label("q_diagnostics"),
            quarantine.c.since.label("q_since"),
            quarantine.c.last_seen.label("q_last_seen"),
        )
        .select_from(_WITH_SCHEDULER.outerjoin(quarantine, quarantine.c.path == jobs.c.source_file))
        .where(jobs.c.name == name)
    )
    row = (await connection.execute(statement)).mappings().first()
    if row is None:
        return None
    quarantined = None
    if row["q_path"] is not None:
        quarantined = quarantine_dict(
            {
                "path": row["q_path"],
                "diagnostics": row["q_diagnostics"],
                "since": row["q_since"],
                "last_seen": row["q_last_seen"],
            }
        )
    return JobRecord(
        job={column.name: row[column.name] for column in jobs.columns},
        scheduled=row["aps_id"] is not None,
        next_run_time=row["next_run_time"],
        quarantine=quarantined,
    )


def drift_of(status: str, *, scheduled: bool, next_run_time: float | None) -> dict[str, str] | None:
    """How the scheduler's row disagrees with the job's status; None when they agree.
    Pure. A completed job (a past one-off date) has legitimately no row."""
    if status == "completed":
        if scheduled and next_run_time is not None:
            return {
                "code": "unexpected_scheduler_row",
                "detail": "the job is completed but the scheduler still has it due",
            }
        return None
    if not scheduled:
        return {
            "code": "missing_scheduler_row",
            "detail": "the job has no apscheduler_jobs row: it will not fire until repaired",
        }
    if status == "active" and next_run_time is None:
        return {
            "code": "scheduler_paused",
            "detail": "the job is active but its scheduler row is paused",
        }
    if status == "paused" and next_run_time is not None:
        return {
            "code": "scheduler_active",
            "detail": "the job is paused but its scheduler row will fire",
        }
    return None

