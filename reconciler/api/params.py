"""Query and path parameter types shared by the routes, with their limits.

Every string a client sends is bounded in length and free of control characters (a NUL
reaches PostgreSQL as an error, not as a match), so hostile input is a 422 problem.
`limit` above its cap is a 422 too: the API never silently returns fewer rows than asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field, StringConstraints

from reconciler.api.models import Problem
from reconciler.api.problems import PROBLEM_JSON

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
STATUS = r"^[a-z_]{1,16}$"
LABEL = r"^[A-Za-z0-9._/-]{1,63}=[^\x00-\x1f\x7f]{0,253}$"

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}); more is a 422",
    ),
]
Cursor = Annotated[
    str | None,
    Query(max_length=1024, description="The next_cursor of the previous page (opaque)"),
]
WindowStart = Annotated[
    datetime | None,
    Query(alias="from", description="Window start, RFC 3339 (default: `to` minus 24 h)"),
]
WindowEnd = Annotated[
    datetime | None, Query(alias="to", description="Window end, RFC 3339 (default: now)")
]
Status = Annotated[str | None, Query(pattern=STATUS, description="Only this status")]


class JobsQuery(BaseModel):
    """The query of GET /api/v1/jobs, validated as one model (one pydantic call instead of
    one per parameter: the list is the hot path)."""

    status: str | None = Field(None, pattern=STATUS, description="Only this status")
    queue: str | None = Field(
        None, max_length=64, pattern=NO_CONTROL, description="Only this queue"
    )
    label: list[Annotated[str, StringConstraints(pattern=LABEL)]] = Field(
        default_factory=list, max_length=20, description="key=value; repeat to require several"
    )
    prefix: str | None = Field(
        None, max_length=191, pattern=NO_CONTROL, description="Names starting with this"
    )
    sort: Literal["name", "-name"] = Field("name", description="name or -name")
    limit: int = Field(
        DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description=f"Page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}); more is a 422",
    )
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Rows to skip")
    cursor: str | None = Field(
        None, max_length=1024, description="The next_cursor of the previous page (opaque)"
    )
    include_total: bool = Field(False, description="Count all matches (one more query)")


JobName = Annotated[
    str,
    Path(min_length=1, max_length=191, pattern=NO_CONTROL, description="The job's name"),
]
TaskId = Annotated[
    str,
    Path(min_length=1, max_length=255, pattern=NO_CONTROL, description="A Celery task id"),
]


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: _problem("Missing or wrong bearer token"),
    422: _problem("Invalid parameters"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem("Not found")}
BAD_CURSOR: dict[int | str, dict[str, Any]] = {400: _problem("Invalid cursor")}
BAD_WINDOW: dict[int | str, dict[str, Any]] = {
    400: _problem("Invalid cursor, or `from` after `to`")
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (If-None-Match matched the ETag)"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: _problem("A backing service is unavailable")}
