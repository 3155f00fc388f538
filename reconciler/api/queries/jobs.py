"""/api/v1/jobs and /api/v1/jobs/{name}: the store's rows (`store.job_reads`), shaped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import (
    as_utc,
    epoch_to_utc,
    quarantine_dict,
    run_dict,
    schedule_summary,
)
from reconciler.core.status import DRIFT_DETAILS, JobView, job_drift, view_job
from reconciler.store.job_reads import (
    JobDetailRow,
    read_job_detail,
)
from reconciler.store.status import job_row


def job_items(rows: Iterable[RowMapping]) -> list[dict[str, Any]]:
    """A page of read-model rows (`store.job_reads.read_job_page`) as list items."""
    now = datetime.now(UTC)
    return [_item(view_job(job_row(row), now=now)) for row in rows]


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


async def get_job(connection: AsyncConnection, name: str) -> JobDetailRow | None:
    """The job's rows, its quarantine and newest run shaped as the API shows them."""
    found = await read_job_detail(connection, name)
    if found is None:
        return None
    return replace(
        found,
        quarantine=None if found.quarantine is None else quarantine_dict(found.quarantine),
        last_run=None if found.last_run is None else run_dict(found.last_run),
    )


def drift_of(status: str, *, scheduled: bool, next_run_time: float | None) -> dict[str, str] | None:
    """How the scheduler's row disagrees with the job's status (reconciler.core.status's
    vocabulary); None when they agree."""
    kind = job_drift(status, scheduled=scheduled, next_run_time=next_run_time)
    return None if kind is None else {"code": kind.value, "detail": DRIFT_DETAILS[kind]}
