"""The optional bearer token (RECONCILER_API_TOKEN).

Unset: the API is open. Set: every route but the health probes (/health, /health/live,
/health/ready) needs `Authorization: Bearer <token>`, including /metrics; /openapi.json
and /docs too when RECONCILER_API_PUBLIC_DOCS is false (by default they are public).
The comparison is constant-time. A missing or wrong token is a 401 problem with a
`WWW-Authenticate: Bearer` challenge (RFC 6750); the token is never logged or echoed.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reconciler.api.problems import ApiProblem

bearer = HTTPBearer(auto_error=False, description="RECONCILER_API_TOKEN, when it is set")
REALM = 'Bearer realm="reconciler"'


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison; any text (headers arrive as latin-1) is accepted."""
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8")
    )


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Raise a 401 problem unless the token is unset or presented correctly."""
    expected = request.app.state.resources.settings.api_token
    if not expected:
        return
    if credentials is None:
        raise ApiProblem(401, "a bearer token is required", headers={"WWW-Authenticate": REALM})
    if not token_matches(credentials.credentials, expected):
        raise ApiProblem(
            401,
            "the bearer token is not valid",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
