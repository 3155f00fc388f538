"""Reads for the read commands and the API: a job's runs (the ledger), events, inventory
row and quarantine, the reconcile passes, the slots endpoint. The same statements for
the CLI (sync, `read_all`) and the API (async, `read_all_async`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.core.slots import JobHistory, explain_slots, page_slots
from reconciler.spec.model import JobSpec
from reconciler.store.tables import (
    job_events,
    job_runs,
    quarantined_files,
    reconcile_runs,
    scheduled_jobs,
)

_NEWEST_FIRST = (job_runs.c.scheduled_time.desc(), job_runs.c.id.desc())


def runs_statement(
    *,
    job: str | None = None,
    statuses: tuple[str, ...] = (),
    since: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> sa.Select[Any]:
    """Runs newest first (scheduled time, then id), of one job or all; with `before`, only
    those strictly older than that (scheduled_time, id) keyset."""
    statement = sa.select(job_runs)
    if job is not None:
        statement = statement.where(job_runs.c.job_name == job)
    if statuses:
        statement = statement.where(job_runs.c.status.in_(statuses))
    if since is not None:
        statement = statement.where(job_runs.c.scheduled_time >= since)
    if before is not None:
        moment, run_id = before
        statement = statement.where(
            sa.or_(
                job_runs.c.scheduled_time < moment,
                sa.and_(job_runs.c.scheduled_time == moment, job_runs.c.id < run_id),
            )
        )
    return statement.order_by(*_NEWEST_FIRST).limit(limit)


def run_statement(run_id: str) -> sa.Select[Any]:
    return sa.select(job_runs).where(job_runs.c.id == run_id)


def run_counts_statement(job: str) -> sa.Select[Any]:
    """A job's runs counted by status (columns `status`, `runs`)."""
    return (
        sa.select(job_runs.c.status, sa.func.count().label("runs"))
        .where(job_runs.c.job_name == job)
        .group_by(job_runs.c.status)
    )


def window_statement(job: str, start: datetime, end: datetime) -> sa.Select[Any]:
    """A job's ledger rows with a slot in [start, end], oldest first."""
    return (
        sa.select(job_runs)
        .where(job_runs.c.job_name == job)
        .where(job_runs.c.scheduled_time >= start, job_runs.c.scheduled_time <= end)
        .order_by(job_runs.c.scheduled_time, job_runs.c.id)
    )


def events_statement(job: str, *, limit: int = 1000) -> sa.Select[Any]:
    """A job's events, oldest first (the newest `limit`)."""
    newest = (
        sa.select(job_events)
        .where(job_events.c.job_name == job)
        .order_by(job_events.c.at.desc(), job_events.c.id.desc())
        .limit(limit)
        .subquery()
    )
    return sa.select(newest).order_by(newest.c.at, newest.c.id)


def job_statement(name: str) -> sa.Select[Any]:
    return sa.select(scheduled_jobs).where(scheduled_jobs.c.name == name)


def read_all(connection: Connection, statement: sa.Select[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(statement).mappings()]


async def read_all_async(
    connection: AsyncConnection, statement: sa.Select[Any]
) -> list[dict[str, Any]]:
    return [dict(row) for row in (await connection.execute(statement)).mappings()]


@dataclass(frozen=True, kw_only=True)
class SlotAnswer:
    """One page of `explain`: the job's slots in the window with their fates."""

    job: str
    spec: JobSpec
    start: datetime
    end: datetime
    slots: list[dict[str, Any]]
    next_after: datetime | None  # where the next page starts; None: the last page


def quarantine_statement(path: str | None = None) -> sa.Select[Any]:
    """The quarantined files in path order, or the one at `path`."""
    statement = sa.select(quarantined_files).order_by(quarantined_files.c.path)
    return statement if path is None else statement.where(quarantined_files.c.path == path)


def read_quarantine(connection: Connection, path: str) -> dict[str, Any] | None:
    """The quarantine row of a job file, None when the file is not quarantined."""
    found = read_all(connection, quarantine_statement(path))
    return found[0] if found else None


def reconciles_statement(limit: int) -> sa.Select[Any]:
    """The newest `limit` reconcile passes, newest first."""
    newest_first = (reconcile_runs.c.started_at.desc(), reconcile_runs.c.id.desc())
    return sa.select(reconcile_runs).order_by(*newest_first).limit(limit)


def read_job_spec(connection: Connection, name: str) -> tuple[dict[str, Any], JobSpec] | None:
    row = connection.execute(job_statement(name)).mappings().first()
    if row is None:
        return None
    return dict(row), JobSpec.model_validate(dict(row["spec"]), strict=False)


def explain_window(
    connection: Connection,
    name: str,
    *,
    start: datetime,
    end: datetime,
    after: datetime | None,
    limit: int,
    now: datetime,
) -> SlotAnswer | None:
    """The slots of job `name` in [start, end] after `after`, at most `limit`, each with
    its fate (reconciler.core.slots). None when no job has this name. Sync: the API runs
    it through `AsyncConnection.run_sync`."""
    found = read_job_spec(connection, name)
    if found is None:
        return None
    row, spec = found
    page = page_slots(spec, start=start, end=end, after=after, limit=limit)
    runs = read_all(connection, window_statement(name, page.rows_from, page.rows_to))
    history = JobHistory(
        created_at=row["created_at"],
        status_now=row["status"],
        events=read_all(connection, events_statement(name)),
    )
    return SlotAnswer(
        job=name,
        spec=spec,
        start=start,
        end=end,
        slots=explain_slots(
            spec,
            page.slots,
            runs,
            history=history,
            now=now,
            dst=page.dst,
        ),
        next_after=page.next_after,
    )
