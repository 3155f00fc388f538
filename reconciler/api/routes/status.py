"""/api/v1/reconciler: who leads, what was applied, what is quarantined, what drifted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from reconciler.api import params
from reconciler.api.deps import Authed, Conn
from reconciler.api.models import ReconcilerStatus
from reconciler.api.queries import overview
from reconciler.api.responses import json_response

router = APIRouter(
    prefix="/api/v1/reconciler",
    tags=["reconciler"],
    dependencies=[Authed],
    responses={**params.AUTH_PROBLEMS, **params.NOT_MODIFIED, **params.UNAVAILABLE},
)


@router.get("", response_model=ReconcilerStatus, summary="Reconciler status")
async def reconciler_status(
    request: Request,
    connection: Conn,
    runs: Annotated[int, Query(ge=1, le=100, description="How many reconcile runs")] = 10,
) -> Response:
    """The fresh leader (heartbeat within 30 s), all instances, the last `runs` reconcile
    passes, the applied revision, quarantined files with diagnostics and drift counts."""
    found = await overview.list_instances(connection, now=overview.utc_now())
    history = await overview.recent_reconciles(connection, runs)
    body = {
        "leader": overview.pick_leader(found),
        "instances": found,
        "applied_revision": await overview.applied_revision(connection),
        "last_reconcile": history[0] if history else None,
        "reconcile_runs": history,
        "jobs_by_status": await overview.jobs_by_status(connection),
        "quarantined_files": await overview.list_quarantine(connection),
        "drift": await overview.drift_counts(connection),
    }
    return json_response(request, body)
