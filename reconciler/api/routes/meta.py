"""/metrics (Prometheus text), /openapi.json and /docs, behind the token when it is set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import HTMLResponse, JSONResponse, Response

from reconciler.api.deps import Authed

router = APIRouter(dependencies=[Authed])


@router.get("/metrics", tags=["metrics"], summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Every `reconciler_*` metric of this process, in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title)
