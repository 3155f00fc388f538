"""Reads of the run ledger (`job_runs`) for jobs, runs and tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import run_dict
from reconciler.store.tables import job_runs as runs
from reconciler.store.tables import scheduled_jobs as jobs

_NEWEST_FIRST = (runs.c.scheduled_time.desc(), runs.c.id.desc())


async def list_runs(
    connection: AsyncConnection,
    *,
    job: str,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` runs of `job`, newest first, strictly older than the keyset `before`
    (scheduled_time, id). One query on the (job_name, scheduled_time) index."""
    statement = sa.select(runs).where(runs.c.job_name == job)
    if status is not None:
        statement = statement.where(runs.c.status == status)
    if before is not None:
        moment, run_id = before
        statement = statement.where(
            sa.or_(
                runs.c.scheduled_time < moment,
                sa.and_(runs.c.scheduled_time == moment, runs.c.id < run_id),
            )
        )
    rows = (await connection.execute(statement.order_by(*_NEWEST_FIRST).limit(limit))).mappings()
    return [run_dict(row) for row in rows]


async def get_run(connection: AsyncConnection, run_id: str) -> dict[str, Any] | None:
    row = (await connection.execute(sa.select(runs).where(runs.c.id == run_id))).mappings().first()
    return None if row is None else run_dict(row)


async def run_counts(connection: AsyncConnection, job: str) -> dict[str, int]:
    statement = (
        sa.select(runs.c.status, sa.func.count())
        .where(runs.c.job_name == job)
        .group_by(runs.c.status)
    )
    return {status: int(count) for status, count in (await connection.execute(statement)).all()}


async def job_exists(connection: AsyncConnection, name: str) -> bool:
    statement = sa.select(jobs.c.name).where(jobs.c.name == name)
    return (await connection.execute(statement)).first() is not None
