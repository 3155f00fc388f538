"""/api/v1/runs/{run_id}: one row of the run ledger."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from reconciler.api import params
from reconciler.api.deps import Authed, Conn
from reconciler.api.models import Run
from reconciler.api.problems import ApiProblem
from reconciler.api.queries.runs import get_run
from reconciler.api.responses import json_response

router = APIRouter(
    prefix="/api/v1/runs",
    tags=["runs"],
    dependencies=[Authed],
    responses={**params.AUTH_PROBLEMS, **params.NOT_MODIFIED, **params.UNAVAILABLE},
)


@router.get("/{run_id}", response_model=Run, responses=params.NOT_FOUND, summary="One run")
async def run_detail(request: Request, connection: Conn, run_id: params.TaskId) -> Response:
    """The ledger row of one fire (its id is also its Celery task id)."""
    run = await get_run(connection, run_id)
    if run is None:
        raise ApiProblem(404, "no run has this id")
    return json_response(request, run)
