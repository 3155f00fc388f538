"""A canary secret in job kwargs/args, a run's error and result summary, a reconcile error
and a Celery result never appears in any response body, header, log line or /metrics."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from api_seed import ALPHA_RUNS, CANARY, make_settings
from fastapi.testclient import TestClient

from reconciler.api import create_app

pytestmark = pytest.mark.services
REDIS = "redis://127.0.0.1:6379/0"


def test_canary_never_leaks(
    seeded_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = redis.Redis.from_url(REDIS)
    store.set(
        f"{redis_prefix}celery-task-meta-{ALPHA_RUNS[1]}",
        json.dumps(
            {
                "status": "SUCCESS",
                "result": {"apiToken": CANARY, "list": [{"secret": CANARY}], "n": 1},
                "date_done": "2026-11-22T10:00:00+00:00",
            }
        ),
    )
    store.close()
    caplog.set_level(logging.DEBUG)
    settings = make_settings(seeded_url, result_backend=REDIS, redis_prefix=redis_prefix)
    paths = [
        "/api/v1/jobs",
        "/api/v1/jobs?label=team=billing",
        "/api/v1/jobs/alpha-billing",
        "/api/v1/jobs/alpha-billing/runs",
        *(f"/api/v1/runs/{run}" for run in ALPHA_RUNS),
        *(f"/api/v1/tasks/{run}" for run in ALPHA_RUNS),
        *(f"/api/v1/tasks/{run}/result" for run in ALPHA_RUNS),
        "/api/v1/reconciler",
        "/openapi.json",
        "/metrics",
    ]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        responses = [client.get(path) for path in paths]
        logged = [record.getMessage() for record in caplog.records]
        # Input a client sends is not echoed either (it is not ours to log, so only bodies).
        echoes = [
            client.get(f"/api/v1/jobs/{CANARY}"),
            client.get(f"/api/v1/jobs?prefix=%00{CANARY}"),
            client.get(f"/api/v1/jobs?limit={CANARY}"),
        ]
    assert [r.status_code for r in responses] == [200] * len(paths)
    assert [r.status_code for r in echoes] == [404, 422, 422]
    assert all(CANARY not in r.text for r in echoes)
    for response in responses:
        assert CANARY not in response.text, response.url
        assert all(CANARY not in f"{k}: {v}" for k, v in response.headers.items())
    # The redacted shapes are still there: the secret was masked, not the data dropped.
    detail = responses[2].json()
    assert detail["spec"]["kwargs"]["api_key"] == "***"
    assert detail["spec"]["args"] == [{"token": "***"}]
    task = next(r for r in responses if r.url.path == f"/api/v1/tasks/{ALPHA_RUNS[1]}").json()
    assert task["result"] == {"apiToken": "***", "list": [{"secret": "***"}], "n": 1}
    assert logged  # DEBUG logs of the drivers and clients were captured ...
    assert not [message for message in logged if CANARY in message]  # ... and hold none
