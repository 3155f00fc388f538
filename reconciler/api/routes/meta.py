"""/metrics (Prometheus text) behind the token when it is set; /openapi.json and /docs,
public by default (RECONCILER_API_PUBLIC_DOCS: they describe the API and hold no data,
and a browser cannot send a bearer token when it opens a page), else behind the token.

/docs works offline: Swagger UI's script, stylesheet and icon are served by the app
from the `fastapi-offline` package's static folder, never from a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import fastapi_offline
from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from reconciler.api.deps import Authed
from reconciler.api.problems import ApiProblem
from reconciler.api.security import bearer, require_token
from reconciler.metrics import API_METRICS, only

router = APIRouter(dependencies=[Authed])
# The API's own families only: the daemon's (leader, managed jobs ...) are the daemon's to
# export, and at 0 here they would contradict it.
_REGISTRY = only(API_METRICS)

# The assets /docs needs, by the name it asks for them; nothing else is served from there.
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
ASSET_PREFIX = "/docs/assets"


async def _docs_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    if not request.app.state.resources.settings.api_public_docs:
        await require_token(request, credentials)


docs_router = APIRouter(dependencies=[Depends(_docs_access)])


@router.get("/metrics", tags=["metrics"], summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """The API's own `reconciler_api_*` metrics (and the process collectors), in the
    Prometheus text format. The daemon and the workers serve theirs on their own ports."""
    return Response(generate_latest(_REGISTRY), media_type=CONTENT_TYPE_LATEST)


@docs_router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@docs_router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=request.app.title,
        swagger_js_url=f"{ASSET_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSET_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{ASSET_PREFIX}/favicon.png",
    )


@docs_router.get(ASSET_PREFIX + "/{name}", include_in_schema=False)
async def docs_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiProblem(404, "no such documentation asset")
    return FileResponse(
        ASSETS_DIR / name,
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=86400"},
    )
