"""Reads for /api/v1/reconciler: leader, reconcile history, quarantine, drift counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import as_utc, quarantine_dict
from reconciler.redact import redact
from reconciler.store.tables import apscheduler_jobs as aps
from reconciler.store.tables import quarantined_files as quarantine
from reconciler.store.tables import reconcile_runs
from reconciler.store.tables import reconciler_instances as instances
from reconciler.store.tables import scheduled_jobs as jobs

# A leader whose heartbeat is older than this is not reported as the leader.
LEADER_STALE_AFTER = timedelta(seconds=30)
SUCCESSFUL_OUTCOMES = ("applied", "no_changes")
_CHANGES = ("added", "updated", "paused", "resumed", "removed", "repaired")


async def list_instances(connection: AsyncConnection, *, now: datetime) -> list[dict[str, Any]]:
    rows = (
        await connection.execute(sa.select(instances).order_by(instances.c.instance))
    ).mappings()
    result = []
    for row in rows:
        heartbeat = as_utc(row["heartbeat_at"])
        assert heartbeat is not None
        result.append(
            {
                "instance": row["instance"],
                "role": row["role"],
                "epoch": row["epoch"],
                "started_at": as_utc(row["started_at"]),
                "heartbeat_at": heartbeat,
                "fresh": now - heartbeat <= LEADER_STALE_AFTER,
            }
        )
    return result


def pick_leader(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fresh leader with the highest epoch (the fencing token), or None."""
    leaders = [item for item in found if item["role"] == "leader" and item["fresh"]]
    return max(leaders, key=lambda item: item["epoch"], default=None)


async def recent_reconciles(connection: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    statement = sa.select(reconcile_runs).order_by(
        reconcile_runs.c.started_at.desc(), reconcile_runs.c.id.desc()
    )
    rows = (await connection.execute(statement.limit(limit))).mappings()
    return [_reconcile_dict(row) for row in rows]


async def applied_revision(connection: AsyncConnection) -> str | None:
    statement = (
        sa.select(reconcile_runs.c.revision)
        .where(reconcile_runs.c.outcome.in_(SUCCESSFUL_OUTCOMES))
        .order_by(reconcile_runs.c.started_at.desc(), reconcile_runs.c.id.desc())
        .limit(1)
    )
    return (await connection.execute(statement)).scalar_one_or_none()


def _reconcile_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "trigger": row["trigger"],
        "instance": row["instance"],
        "started_at": as_utc(row["started_at"]),
        "finished_at": as_utc(row["finished_at"]),
        "duration_seconds": row["duration_seconds"],
        "outcome": row["outcome"],
        "revision": row["revision"],
        "revision_dirty": row["revision_dirty"],
        "plan_hash": row["plan_hash"],
        "changes": {name: row[name] for name in _CHANGES},
        "quarantined_files": row["quarantined_files"],
        "foreign_rows": row["foreign_rows"],
        "errors": redact(row["errors"]),
    }


async def list_quarantine(connection: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await connection.execute(sa.select(quarantine).order_by(quarantine.c.path))).mappings()
    return [quarantine_dict(row) for row in rows]


async def jobs_by_status(connection: AsyncConnection) -> dict[str, int]:
    statement = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
    return {status: int(count) for status, count in (await connection.execute(statement)).all()}


async def drift_counts(connection: AsyncConnection) -> dict[str, int]:
    """One query of three scalar subqueries over jobs and scheduler rows."""
    ours = sa.select(jobs.c.name)
    missing = (
        sa.select(sa.func.count())
        .select_from(jobs.outerjoin(aps, aps.c.id == jobs.c.name))
        .where(aps.c.id.is_(None), jobs.c.status.in_(("active", "paused")))
        .scalar_subquery()
    )
    mismatched = (
        sa.select(sa.func.count())
        .select_from(jobs.join(aps, aps.c.id == jobs.c.name))
        .where(
            sa.or_(
                sa.and_(jobs.c.status == "active", aps.c.next_run_time.is_(None)),
                sa.and_(jobs.c.status == "paused", aps.c.next_run_time.is_not(None)),
            )
        )
        .scalar_subquery()
    )
    foreign = (
        sa.select(sa.func.count()).select_from(aps).where(aps.c.id.not_in(ours)).scalar_subquery()
    )
    row = (await connection.execute(sa.select(missing, mismatched, foreign))).one()
    return {
        "missing_scheduler_rows": int(row[0]),
        "paused_mismatches": int(row[1]),
        "foreign_scheduler_rows": int(row[2]),
    }


def utc_now() -> datetime:
    return datetime.now(UTC)
