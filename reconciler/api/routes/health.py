"""Probes: /health and /health/live (the process answers), /health/ready (its services do).

Never behind the bearer token: orchestrators probe without credentials. They say nothing
secret: a version, and per check ok / latency / a scrubbed error.
"""

from __future__ import annotations

import pydantic_core
from fastapi import APIRouter
from starlette.responses import Response

from reconciler import __version__
from reconciler.api.deps import Res
from reconciler.api.models import Health, Readiness
from reconciler.api.probes import readiness
from reconciler.api.responses import JSON

router = APIRouter(tags=["health"])


def _health() -> Response:
    return Response(
        pydantic_core.to_json({"status": "ok", "version": __version__}), media_type=JSON
    )


@router.get("/health", response_model=Health, summary="The process runs")
async def health() -> Response:
    """Always 200 while the process serves requests."""
    return _health()


@router.get("/health/live", response_model=Health, summary="Liveness")
async def live() -> Response:
    """Always 200 while the process serves requests (restart it if this fails)."""
    return _health()


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A service failed its check"}},
    summary="Readiness",
)
async def ready(resources: Res) -> Response:
    """200 when the database (SELECT 1), Redis (PING) and the broker (a real connection)
    all answer within 2 s; else 503. Each check reports its latency in ms."""
    settings = resources.settings
    report = await readiness(
        resources.engine, redis_url=settings.redis_url, broker_url=settings.broker_url
    )
    status = 200 if report["status"] == "ready" else 503
    return Response(pydantic_core.to_json(report), status_code=status, media_type=JSON)
