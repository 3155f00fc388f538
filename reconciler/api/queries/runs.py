"""Runs (`job_runs`) for jobs, runs and tasks: the store's statements
(`store.history`), shaped by `api.shape.run_dict`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import run_dict
from reconciler.store.history import (
    job_statement,
    read_all_async,
    run_counts_statement,
    run_statement,
    runs_statement,
)


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
    statuses = () if status is None else (status,)
    statement = runs_statement(job=job, statuses=statuses, before=before, limit=limit)
    return [run_dict(row) for row in await read_all_async(connection, statement)]


async def get_run(connection: AsyncConnection, run_id: str) -> dict[str, Any] | None:
    rows = await read_all_async(connection, run_statement(run_id))
    return run_dict(rows[0]) if rows else None


async def run_counts(connection: AsyncConnection, job: str) -> dict[str, int]:
    rows = await read_all_async(connection, run_counts_statement(job))
    return {row["status"]: int(row["runs"]) for row in rows}


async def job_exists(connection: AsyncConnection, name: str) -> bool:
    return bool(await read_all_async(connection, job_statement(name)))
