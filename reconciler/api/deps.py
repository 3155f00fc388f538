"""Dependencies of the routes, as `Annotated` aliases (full-stack-fastapi-template style).

Res       the app's Resources (settings, engine, Redis client)
Conn      an AsyncConnection from the pool, returned when the request ends
Authed    the bearer-token guard (see reconciler.api.security)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.api.resources import Resources
from reconciler.api.security import require_token


async def get_resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a sync dependency in a worker thread, a hop per call.
    resources: Resources = request.app.state.resources
    return resources


Res = Annotated[Resources, Depends(get_resources)]


async def get_connection(resources: Res) -> AsyncIterator[AsyncConnection]:
    async with resources.engine.connect() as connection:
        yield connection


Conn = Annotated[AsyncConnection, Depends(get_connection)]
Authed = Depends(require_token)
