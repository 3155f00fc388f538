"""The facts `reconcile status` shows, read from the database alone (plain SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.store.tables import (
    apscheduler_jobs,
    quarantined_files,
    reconcile_runs,
    reconciler_instances,
    scheduled_jobs,
)

# A leader whose heartbeat is older than this is reported as lost.
LEADER_STALE_AFTER = timedelta(seconds=15)


@dataclass(frozen=True)
class StatusReport:
    jobs_by_status: dict[str, int]
    leader: dict[str, Any] | None
    instances: list[dict[str, Any]]
    last_reconcile: dict[str, Any] | None
    last_applied: dict[str, Any] | None
    quarantined: list[dict[str, Any]]
    missing_rows: list[str]
    paused_mismatch: list[str]
    foreign_rows: list[str] = field(default_factory=list)


def read_status(connection: Connection, *, now: datetime | None = None) -> StatusReport:
    now = now or datetime.now(UTC)
    jobs = scheduled_jobs
    aps = apscheduler_jobs
    by_status: dict[str, int] = dict(
        connection.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
    )
    joined = jobs.outerjoin(aps, aps.c.id == jobs.c.name)
    drift = connection.execute(
        sa.select(jobs.c.name, jobs.c.status, aps.c.id, aps.c.next_run_time)
        .select_from(joined)
        .where(jobs.c.status.in_(("active", "paused")))
        .where(
            sa.or_(
                aps.c.id.is_(None),
                sa.and_(jobs.c.status == "paused", aps.c.next_run_time.is_not(None)),
                sa.and_(jobs.c.status == "active", aps.c.next_run_time.is_(None)),
            )
        )
    ).all()
    foreign = connection.execute(
        sa.select(aps.c.id).where(~aps.c.id.in_(sa.select(jobs.c.name))).order_by(aps.c.id)
    ).scalars()
    instances = [dict(row._mapping) for row in connection.execute(sa.select(reconciler_instances))]
    leader = next(
        (
            row
            for row in instances
            if row["role"] == "leader" and _aware(row["heartbeat_at"]) > now - LEADER_STALE_AFTER
        ),
        None,
    )
    return StatusReport(
        jobs_by_status={str(k): int(v) for k, v in by_status.items()},
        leader=leader,
        instances=instances,
        last_reconcile=_latest_run(connection),
        last_applied=_latest_run(connection, reconcile_runs.c.outcome == "applied"),
        quarantined=[
            dict(row._mapping)
            for row in connection.execute(
                sa.select(quarantined_files).order_by(quarantined_files.c.path)
            )
        ],
        missing_rows=[row.name for row in drift if row.id is None],
        paused_mismatch=[row.name for row in drift if row.id is not None],
        foreign_rows=list(foreign),
    )


def _latest_run(connection: Connection, *conditions: Any) -> dict[str, Any] | None:
    query = sa.select(reconcile_runs).order_by(reconcile_runs.c.id.desc()).limit(1)
    for condition in conditions:
        query = query.where(condition)
    row = connection.execute(query).first()
    return dict(row._mapping) if row else None


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
