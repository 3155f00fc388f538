"""Request metrics as a pure ASGI middleware (BaseHTTPMiddleware costs a task per request).

Labels are the ROUTE TEMPLATE (`/api/v1/jobs/{name}`), never the raw path, so label
cardinality is bounded whatever clients send; a path that matches no route is
`<unmatched>`. A request that escapes with an exception is counted as a 500.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.metrics import API_LATENCY, API_REQUESTS

UNMATCHED = "<unmatched>"


class RequestMetrics:
    """Counts API_REQUESTS{route, status} and observes API_LATENCY{route}."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_template(scope)
            API_REQUESTS.labels(route=route, status=str(status)).inc()
            API_LATENCY.labels(route=route).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path template of the route the router matched (fully or by path only), if any."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
