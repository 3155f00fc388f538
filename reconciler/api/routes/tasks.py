"""/api/v1/tasks/{task_id} and /api/v1/tasks/{task_id}/result: Celery's view of a fire."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from reconciler.api import params
from reconciler.api.deps import Authed, Conn, Res
from reconciler.api.models import CeleryResult, TaskInfo
from reconciler.api.problems import ApiProblem
from reconciler.api.queries.runs import get_run
from reconciler.api.responses import json_response
from reconciler.api.results import celery_view, read_task_meta

router = APIRouter(
    prefix="/api/v1/tasks",
    tags=["tasks"],
    dependencies=[Authed],
    responses={
        **params.AUTH_PROBLEMS,
        **params.NOT_MODIFIED,
        **params.NOT_FOUND,
        **params.UNAVAILABLE,
    },
)


async def _lookup(
    resources: Res, connection: Conn, task_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(celery view, ledger run). Raises a 404 problem when neither knows the id."""
    meta = await read_task_meta(
        resources.results, prefix=resources.settings.redis_prefix, task_id=task_id
    )
    run = await get_run(connection, task_id)
    if meta is None and run is None:
        raise ApiProblem(404, "no task has this id (neither the result backend nor the ledger)")
    return celery_view(task_id, meta), run


@router.get("/{task_id}", response_model=TaskInfo, summary="Celery state of a task")
async def task_detail(
    request: Request, resources: Res, connection: Conn, task_id: params.TaskId
) -> Response:
    """Celery state, result (redacted) and the ledger row. PENDING only for ids the ledger
    knows; unknown ids are 404 (Celery itself would say PENDING for any id)."""
    view, run = await _lookup(resources, connection, task_id)
    return json_response(request, {**view, "run": run})


@router.get("/{task_id}/result", response_model=CeleryResult, summary="Result of a task")
async def task_result(
    request: Request, resources: Res, connection: Conn, task_id: params.TaskId
) -> Response:
    """Only the Celery state and the (redacted) result."""
    view, _run = await _lookup(resources, connection, task_id)
    return json_response(request, view)
