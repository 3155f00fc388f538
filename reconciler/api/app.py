"""The read-only status API: `create_app(settings)` builds it, `reconcile api` serves it.

Contract (README.md "HTTP API (read-only)"): GET only; any other method (HEAD and unknown
ones included) is a 405 problem; every error is an RFC 9457 problem document; lists are
capped and keyset paginated; secret-looking values are redacted; the bearer token, when
set, guards all but the health probes. The app opens its database engine and Redis
client at startup and closes them at shutdown (the ASGI lifespan): a test or a server
must run the lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from reconciler import __version__
from reconciler.api.microcache import MicroCache
from reconciler.api.middleware import RequestMetrics
from reconciler.api.problems import install_problem_handlers
from reconciler.api.resources import Resources, open_resources
from reconciler.api.routes import health, jobs, meta, runs, status, tasks
from reconciler.settings import Settings

DESCRIPTION = """Read-only status of jobs-reconciler: jobs, their runs, Celery tasks, the
reconciler itself, health probes and Prometheus metrics. Jobs change only through YAML in
git; this API never writes. Errors are `application/problem+json` (RFC 9457)."""


def create_app(settings: Settings) -> FastAPI:
    """A new app over `settings`. Nothing connects until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = open_resources(settings)
        app.state.resources = resources
        try:
            yield
        finally:
            await _close(resources)

    app = FastAPI(
        title="jobs-reconciler",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by `meta` (public, or behind the token)
    )
    for module in (jobs, runs, tasks, status, health, meta):
        app.include_router(module.router)
    app.include_router(meta.docs_router)
    install_problem_handlers(app)
    app.add_middleware(MicroCache, seconds=settings.api_cache_seconds)
    app.add_middleware(RequestMetrics)  # outermost: counts cached answers too
    return app


async def _close(resources: Resources) -> None:
    await resources.aclose()
