"""Reads for /api/v1/reconciler: the one read model (`reconciler.core.status`) and the
reconcile history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.shape import as_utc, quarantine_dict
from reconciler.core.status import StatusView, build_status
from reconciler.core.vocabulary import COUNT_COLUMNS
from reconciler.redact import redact
from reconciler.store.history import quarantine_statement, read_all_async, reconciles_statement
from reconciler.store.status import read_status_rows_async

# The count columns of a pass, each once (a rename is counted with the updates).
_CHANGES = tuple(COUNT_COLUMNS.values())


async def read_status(connection: AsyncConnection, *, now: datetime) -> StatusView:
    """The read model `reconcile status -o json` shows, from the same rows (the body has
    no schedules: not read)."""
    rows = await read_status_rows_async(connection, now=now, details=False)
    return build_status(rows, now=now)


async def recent_reconciles(connection: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    rows = await read_all_async(connection, reconciles_statement(limit))
    return [_reconcile_dict(row) for row in rows]


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
    rows = await read_all_async(connection, quarantine_statement())
    return [quarantine_dict(row) for row in rows]


def utc_now() -> datetime:
    return datetime.now(UTC)
