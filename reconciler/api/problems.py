"""Errors as RFC 9457 problem documents, and the handlers that guarantee it.

Every error the API returns is `application/problem+json` with type, title, status and
detail. No handler ever puts a stack trace, an exception message of unknown origin or the
offending input in a body: a 500 says only that it is a bug, validation errors carry their
location and message but never the value sent.

    HTTPException            -> its status (404, 405 keep their Allow header, 401 its
                                WWW-Authenticate)
    RequestValidationError   -> 422, with `errors` [{loc, msg, type}]
    ApiProblem               -> raised by our own code with a specific type and status
    database unreachable     -> 503 (SQLAlchemy OperationalError, InterfaceError, pool timeout)
    other connection errors  -> 503
    anything else            -> 500 "internal error" (logged by the server with its traceback)
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import pydantic_core
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from reconciler.errors import PermanentError

PROBLEM_JSON = "application/problem+json"
BLANK = "about:blank"
log = logging.getLogger(__name__)

# Headers of an HTTPException that may reach the client.
_PASSED_HEADERS = frozenset({"allow", "www-authenticate", "retry-after"})


class ApiProblem(PermanentError):
    """Raised by route code for an error with its own problem type (e.g. invalid-cursor)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = BLANK,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}


def problem_response(
    status: int,
    detail: str,
    *,
    type_: str = BLANK,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    """A problem document response. `detail` must be safe to show (no secrets, no input)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(
        pydantic_core.to_json(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _on_http_exception(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    headers = {
        key: value for key, value in (error.headers or {}).items() if key.lower() in _PASSED_HEADERS
    }
    detail = error.detail if isinstance(error.detail, str) else _phrase(error.status_code)
    if error.status_code == 405:
        detail = "this API is read-only: only GET is allowed"
    return problem_response(error.status_code, detail, headers=headers or None)


async def _on_validation_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in item.get("loc", ())],
            "msg": str(item.get("msg", "")),
            "type": str(item.get("type", "")),
        }
        for item in error.errors()
    ]
    return problem_response(
        422,
        "the request's parameters are invalid",
        type_="urn:reconciler:problem:invalid-parameters",
        errors=errors,
    )


async def _on_api_problem(_request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiProblem)
    return problem_response(
        error.status,
        error.detail,
        type_=error.type,
        title=error.title,
        headers=error.headers or None,
    )


async def _on_database_down(_request: Request, error: Exception) -> Response:
    log.warning("database unavailable: %s", type(error).__name__)
    return problem_response(
        503,
        "the database is unavailable",
        type_="urn:reconciler:problem:database-unavailable",
        headers={"Retry-After": "5"},
    )


async def _on_service_down(_request: Request, error: Exception) -> Response:
    log.warning("a backing service is unavailable: %s", type(error).__name__)
    return problem_response(
        503,
        "a backing service is unavailable",
        type_="urn:reconciler:problem:service-unavailable",
        headers={"Retry-After": "5"},
    )


async def _on_bug(_request: Request, _error: Exception) -> Response:
    return problem_response(500, "internal error (a bug): see the server log")


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through a problem document (see the module docstring)."""
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ApiProblem, _on_api_problem)
    for kind in (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,
    ):
        app.add_exception_handler(kind, _on_database_down)
    # asyncpg raises a bare OSError (connection refused) on connect.
    app.add_exception_handler(OSError, _on_service_down)
    app.add_exception_handler(Exception, _on_bug)
