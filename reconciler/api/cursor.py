"""Opaque keyset cursors: base64url of a small JSON array `[kind, key...]`.

A cursor is only ever read back by the endpoint that wrote it: the `kind` tag (e.g.
"jobs:name" for the job list sorted by name ascending) makes a cursor from another list,
another sort order or a hand-made string an `invalid cursor` problem (400), never a 500.
Clients must treat the text as opaque; its format may change between versions.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from reconciler.api.problems import ApiProblem

MAX_CURSOR_CHARS = 1024
INVALID_CURSOR = "urn:reconciler:problem:invalid-cursor"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def encode_cursor(kind: str, *keys: str) -> str:
    raw = json.dumps([kind, *keys], separators=(",", ":"), ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, kind: str, arity: int) -> list[str]:
    """The keys inside `cursor`. Raises ApiProblem(400) unless it is a well-formed cursor
    of this `kind` with `arity` string keys."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid_cursor("the cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeError):
        raise invalid_cursor("the cursor is not one this API wrote") from None
    if (
        not isinstance(value, list)
        or len(value) != arity + 1
        or not all(isinstance(item, str) and not _CONTROL.search(item) for item in value)
    ):
        raise invalid_cursor("the cursor is not one this API wrote")
    if value[0] != kind:
        raise invalid_cursor("the cursor belongs to another list or sort order")
    return value[1:]


def invalid_cursor(detail: str = "the cursor is not one this API wrote") -> ApiProblem:
    return ApiProblem(400, detail, type_=INVALID_CURSOR, title="Invalid cursor")
