"""A micro-cache for the read-only API: a 200 response to a GET is kept for
`RECONCILER_API_CACHE_SECONDS` (default 1 s; 0 turns it off) and served again to the same
request (path, query and Authorization header) without touching the database.

Why: a list of jobs costs CPU per request (SQL, shaping, JSON); dashboards and scripts
poll the same URLs. State changes at most once per reconcile pass or fire, and every
client of this API already sees data as old as its last poll: one more second of
staleness buys an order of magnitude of throughput (the nginx "microcaching" idea).
Conditional requests still work: a cached entry keeps its ETag and answers 304.
Health probes and /metrics are never cached; neither is anything but a 200.

Single flight: when an entry expires, ONE request refreshes it while concurrent requests
for the same key get the stale copy (or, with none yet, wait for that one request):
without it, every connection misses at the same instant each second and the event loop
stalls on N identical queries (bench/RESULTS.md "Read-only API" has the latencies).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.api.responses import matches_if_none_match

CACHED_PREFIX = "/api/v1/"
MAX_ENTRIES = 2048


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str | None
    route: Any


class MicroCache:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self._entries: OrderedDict[tuple[str, bytes, bytes], _Entry] = OrderedDict()
        self._filling: dict[tuple[str, bytes, bytes], asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.seconds <= 0
            or scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(CACHED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = (scope["path"], scope.get("query_string", b""), headers.get(b"authorization", b""))
        entry = self._entries.get(key)
        filling = self._filling.get(key)
        if filling is not None and entry is None:
            await filling.wait()  # the first request of this key is fetching it
            entry = self._entries.get(key)
        if entry is not None and (entry.expires > time.monotonic() or key in self._filling):
            scope["route"] = entry.route  # for the request metrics' route label
            await _replay(entry, headers.get(b"if-none-match"), send)
            return
        self._filling[key] = event = asyncio.Event()
        try:
            await self._fill(key, scope, receive, send)
        finally:
            if self._filling.get(key) is event:
                del self._filling[key]
            event.set()

    async def _fill(
        self, key: tuple[str, bytes, bytes], scope: Scope, receive: Receive, send: Send
    ) -> None:
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if started.get("status") != 200:
            return
        response_headers = list(started.get("headers", []))
        etag = next((v.decode() for k, v in response_headers if k.lower() == b"etag"), None)
        self._entries[key] = _Entry(
            expires=time.monotonic() + self.seconds,
            headers=response_headers,
            body=b"".join(chunks),
            etag=etag,
            route=scope.get("route"),
        )
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)


async def _replay(entry: _Entry, if_none_match: bytes | None, send: Send) -> None:
    if entry.etag and if_none_match and matches_if_none_match(if_none_match.decode(), entry.etag):
        kept = [(k, v) for k, v in entry.headers if k.lower() in (b"etag", b"cache-control")]
        await send({"type": "http.response.start", "status": 304, "headers": kept})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
    await send({"type": "http.response.body", "body": entry.body})
