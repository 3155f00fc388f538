"""JSON responses with strong ETags and conditional GET.

Bodies are serialised once by `pydantic_core.to_json` (Rust; datetimes as ISO 8601), the
ETag is a hash of exactly those bytes, so equal bodies have equal tags and any change
changes the tag. `If-None-Match` is compared weakly, as RFC 9110 §13.1.2 requires.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pydantic_core
from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"


def etag_of(body: bytes) -> str:
    """A strong entity tag: the quoted first 32 hex digits of the body's SHA-256."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches_if_none_match(header: str | None, etag: str) -> bool:
    """True when `If-None-Match` names this tag (weak comparison) or is `*`."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def json_response(request: Request, payload: Any, *, cache: bool = True) -> Response:
    """`payload` as JSON; with `cache`, an ETag and 304 Not Modified when it matches."""
    body = pydantic_core.to_json(payload)
    if not cache:
        return Response(body, media_type=JSON)
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if matches_if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON, headers=headers)
