"""Read-only, errors as problem documents, the bearer token, hostile input."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from api_seed import CLOSED_PORT, make_settings, problem_of
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.store.db import create_sync_engine

pytestmark = pytest.mark.services
TOKEN = "t0ken-under-test"
PATHS = [
    "/api/v1/jobs",
    "/api/v1/jobs/alpha-billing",
    "/api/v1/jobs/alpha-billing/runs",
    "/api/v1/runs/x",
    "/api/v1/tasks/x",
    "/api/v1/tasks/x/result",
    "/api/v1/reconciler",
    "/health",
    "/health/ready",
    "/metrics",
]


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FROBNICATE"]
)
def test_everything_but_get_is_405(client: TestClient, method: str) -> None:
    for path in PATHS:
        response = client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == "GET"
        if method != "HEAD":  # a HEAD response has no body
            assert "read-only" in problem_of(response)["detail"]


def test_token_guards_all_but_health(seeded_url: str) -> None:
    settings = make_settings(seeded_url, api_token=TOKEN, api_public_docs=False)
    with TestClient(create_app(settings)) as client:
        for path in [
            "/api/v1/jobs",
            "/api/v1/jobs/alpha-billing",
            "/api/v1/reconciler",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/docs/assets/swagger-ui-bundle.js",
        ]:
            missing = client.get(path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"].startswith("Bearer")
            problem_of(missing)
            wrong = client.get(path, headers={"Authorization": "Bearer wrong-token"})
            assert (
                wrong.status_code == 401
                and 'error="invalid_token"' in wrong.headers["www-authenticate"]
            )
            assert TOKEN not in wrong.text
            other_scheme = client.get(path, headers={"Authorization": f"Basic {TOKEN}"})
            assert other_scheme.status_code == 401
            good = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert good.status_code == 200, path
        latin = client.get(
            "/api/v1/jobs", headers={"Authorization": "Bearer caf\xe9".encode("latin-1")}
        )
        assert latin.status_code == 401
        for path in ("/health", "/health/live", "/health/ready"):
            assert client.get(path).status_code in (200, 503), path  # never 401


def test_docs_are_public_by_default_the_data_is_not(seeded_url: str) -> None:
    with TestClient(create_app(make_settings(seeded_url, api_token=TOKEN))) as client:
        for path in ("/openapi.json", "/docs", "/docs/assets/swagger-ui.css"):
            assert client.get(path).status_code == 200, path
        for path in ("/api/v1/jobs", "/metrics"):
            assert client.get(path).status_code == 401, path
        assert client.get("/docs/assets/..%2Fcore.py").status_code == 404
        assert client.get("/docs/assets/index.html").status_code == 404


HOSTILE = [
    "/api/v1/jobs?limit=501",
    "/api/v1/jobs?limit=100000000000000000000000",
    "/api/v1/jobs?limit=0",
    "/api/v1/jobs?limit=-1",
    "/api/v1/jobs?limit=abc",
    "/api/v1/jobs?offset=-1",
    "/api/v1/jobs?offset=99999999999",
    "/api/v1/jobs?sort=status",
    "/api/v1/jobs?cursor=%%%",
    "/api/v1/jobs?cursor=AAAA",
    "/api/v1/jobs?cursor=" + "A" * 2000,
    "/api/v1/jobs?cursor=WyJqb2JzOm5hbWUiLCJcdTAwMDAiXQ",  # ["jobs:name","\u0000"]
    "/api/v1/jobs?cursor=WyJqb2JzOm5hbWUiLDFd",  # ["jobs:name",1]
    "/api/v1/jobs?prefix=%00",
    "/api/v1/jobs?queue=%00abc",
    "/api/v1/jobs?status=ACTIVE",
    "/api/v1/jobs?label=team",
    "/api/v1/jobs?label=%00=x",
    "/api/v1/jobs?include_total=maybe",
    "/api/v1/jobs/" + "a" * 192,
    "/api/v1/jobs/%00",
    "/api/v1/jobs/a%0Ab",
    "/api/v1/jobs/alpha-billing/runs?limit=501",
    "/api/v1/jobs/alpha-billing/runs?cursor=bm90IGpzb24",
    "/api/v1/jobs/alpha-billing/runs?cursor=WyJydW5zOnRpbWUtZGVzYyIsIm5vdC1hLXRpbWUiLCJ4Il0",
    "/api/v1/runs/" + "r" * 300,
    "/api/v1/tasks/%00",
    "/api/v1/reconciler?runs=1000",
]


def test_hostile_input_is_a_4xx_problem(client: TestClient) -> None:
    for path in HOSTILE:
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        body = problem_of(response)
        assert "\x00" not in response.text
        if response.status_code == 422:
            assert body["errors"] and all("input" not in error for error in body["errors"])


def test_weird_but_valid_names_are_404(client: TestClient) -> None:
    for name in ("%F0%9F%92%A5", "a%2Fb", "%E2%80%AE", "..%2F..%2Fetc", "%C3%28", "%25", "x%20y"):
        response = client.get(f"/api/v1/jobs/{name}")
        assert response.status_code == 404, (name, response.text)
        problem_of(response)
    assert client.get("/api/v1/jobs?prefix=%F0%9F%92%A5").json()["items"] == []


def test_limit_cap_is_explicit(client: TestClient) -> None:
    body = problem_of(client.get("/api/v1/jobs?limit=501"))
    assert body["status"] == 422 and body["errors"][0]["loc"] == ["query", "limit"]
    assert client.get("/api/v1/jobs?limit=500").status_code == 200


def test_unknown_path_is_a_404_problem(client: TestClient) -> None:
    assert problem_of(client.get("/api/v2/jobs"))["status"] == 404


def test_database_down_is_503(tmp_path: object) -> None:
    settings = make_settings(f"postgresql://postgres@127.0.0.1:{CLOSED_PORT}/nothing")
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/jobs")
    assert response.status_code == 503
    assert problem_of(response)["type"].endswith(("database-unavailable", "service-unavailable"))


def test_a_bug_is_a_500_problem_without_a_trace(
    seeded_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A schema that lost a table: the app fails in a way no handler expects.
    engine = create_sync_engine(seeded_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE job_runs"))
    engine.dispose()
    app = create_app(make_settings(seeded_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/runs/x")
    # PostgreSQL: UndefinedTable (a bug, 500); SQLite calls it an OperationalError (503).
    assert response.status_code in (500, 503)
    body = problem_of(response)
    assert "job_runs" not in response.text and "sqlalchemy" not in response.text.lower()
    assert body["detail"] in (
        "internal error (a bug): see the server log",
        "the database is unavailable",
    )
