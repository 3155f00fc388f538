"""Job events (`job_events`): what was applied to a job after its first add, in one
executemany (many rows on PostgreSQL: one COPY) per pass. Adds are not recorded (a cold
apply of 10,000 jobs would pay for 10,000 rows; the inventory's `created_at` says when
a job was added)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.diff import FieldDiffer
from reconciler.core.plan import Plan
from reconciler.core.render import change_line
from reconciler.core.vocabulary import Action
from reconciler.store.db import insert_rows
from reconciler.store.tables import job_events


def record_job_events(connection: Connection, plan: Plan, *, now: datetime) -> int:
    differ = FieldDiffer()  # one for the plan: its jobs share paths and values
    rows = [
        {
            "job_name": change.job,
            "at": now,
            "action": change.action,
            "status": change.target.status if change.target is not None else None,
            "detail": change_line(change, differ=differ),
            "revision": plan.revision.commit,
        }
        for change in plan.changes
        if change.action != Action.ADD
    ]
    insert_rows(connection, job_events, rows)
    return len(rows)


def read_job_events(
    connection: Connection, job: str, *, since: datetime | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest first."""
    statement = sa.select(job_events).where(job_events.c.job_name == job)
    if since is not None:
        statement = statement.where(job_events.c.at >= since)
    statement = statement.order_by(job_events.c.at.desc(), job_events.c.id.desc()).limit(limit)
    return [dict(row) for row in connection.execute(statement).mappings()]
