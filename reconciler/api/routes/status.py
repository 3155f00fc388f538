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
    """The leader (the `leader` row with the highest epoch; `state` alive while it
    heartbeats within 15 s, else stale; none without one), all instances, the last `runs`
    reconcile passes, the applied revision (newest applied or no_changes pass), jobs by
    status and by state, drift counts by kind, quarantined files with diagnostics,
    failing and late jobs. The same read model as `reconcile status`."""
    view = await overview.read_status(connection, now=overview.utc_now())
    history = await overview.recent_reconciles(connection, runs)
    body = view.document() | {
        "last_reconcile": history[0] if history else None,
        "reconcile_runs": history,
        "quarantined_files": await overview.list_quarantine(connection),
    }
    return json_response(request, body)
