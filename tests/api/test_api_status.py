"""/api/v1/runs/{id}, /api/v1/tasks/{id}[/result] (real Redis), /api/v1/reconciler, /health*."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from api_seed import ALPHA_RUNS, CANARY, make_settings, problem_of
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.api.models import CeleryResult, ReconcilerStatus, Run, TaskInfo

pytestmark = pytest.mark.services
REDIS = "redis://127.0.0.1:6379/0"
UNLEDGERED = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def redis_client(seeded_url: str, redis_prefix: str) -> Iterator[TestClient]:
    """The app with its result backend on the real Redis, under this test's key prefix,
    holding a SUCCESS meta for the first alpha run and a FAILURE for an id the ledger
    does not know."""
    store = redis.Redis.from_url(REDIS)
    store.set(
        f"{redis_prefix}celery-task-meta-{ALPHA_RUNS[0]}",
        json.dumps(
            {
                "status": "SUCCESS",
                "result": {"rows": 3, "token": CANARY, "nested": [{"password": CANARY}]},
                "traceback": None,
                "children": [],
                "date_done": "2026-11-22T10:00:00.123456+00:00",
                "task_id": ALPHA_RUNS[0],
            }
        ),
    )
    store.set(
        f"{redis_prefix}celery-task-meta-{UNLEDGERED}",
        json.dumps(
            {
                "status": "FAILURE",
                "result": {
                    "exc_type": "ValueError",
                    "exc_message": [f"bad api_key={CANARY}"],
                    "exc_module": "builtins",
                },
                "traceback": f'Traceback (most recent call last):\n  File "x.py"\n{CANARY}',
                "date_done": "2026-11-22T10:00:00",
            }
        ),
    )
    store.close()
    settings = make_settings(seeded_url, result_backend=REDIS, redis_prefix=redis_prefix)
    with TestClient(create_app(settings)) as client:
        yield client


def test_run_detail(client: TestClient) -> None:
    run = Run.model_validate_json(client.get(f"/api/v1/runs/{ALPHA_RUNS[0]}").text)
    assert (run.job, run.status, run.duration_seconds) == ("alpha-billing", "succeeded", 2.0)
    assert run.result_summary is not None and CANARY not in run.result_summary
    assert json.loads(run.result_summary) == {"token": "***", "rows": 3}
    assert problem_of(client.get("/api/v1/runs/unknown-run"))["status"] == 404


def test_tasks_from_redis_and_ledger(redis_client: TestClient) -> None:
    known = TaskInfo.model_validate_json(redis_client.get(f"/api/v1/tasks/{ALPHA_RUNS[0]}").text)
    assert (known.state, known.ready, known.successful) == ("SUCCESS", True, True)
    assert known.result == {"rows": 3, "token": "***", "nested": [{"password": "***"}]}
    assert known.run is not None and known.run.id == ALPHA_RUNS[0]
    assert known.date_done is not None and known.date_done.microsecond == 123456

    result = redis_client.get(f"/api/v1/tasks/{ALPHA_RUNS[0]}/result")
    assert CeleryResult.model_validate_json(result.text).result["rows"] == 3
    assert "run" not in result.json()

    # In the ledger, not (yet) in the backend: PENDING.
    pending = redis_client.get(f"/api/v1/tasks/{ALPHA_RUNS[2]}").json()
    assert (pending["state"], pending["ready"], pending["run"]["status"]) == (
        "PENDING",
        False,
        "published",
    )
    # In the backend only: Celery's word, without a run; no traceback, message scrubbed.
    failed = redis_client.get(f"/api/v1/tasks/{UNLEDGERED}").json()
    assert (failed["state"], failed["successful"], failed["run"]) == ("FAILURE", False, None)
    assert failed["result"] == {"exc_type": "ValueError", "exc_message": ["bad api_key=***"]}
    # Unknown to both: 404, although Celery would call it PENDING.
    for path in ("/api/v1/tasks/no-such-task", "/api/v1/tasks/no-such-task/result"):
        assert problem_of(redis_client.get(path))["status"] == 404


def test_tasks_with_result_backend_down(client: TestClient) -> None:
    response = client.get(f"/api/v1/tasks/{ALPHA_RUNS[0]}")  # backend on a closed port
    assert response.status_code == 503
    assert problem_of(response)["type"].endswith("result-backend-unavailable")


def test_reconciler_status(client: TestClient) -> None:
    status = ReconcilerStatus.model_validate_json(client.get("/api/v1/reconciler").text)
    assert status.leader is not None and (status.leader.instance, status.leader.epoch) == ("r1", 7)
    stale = next(item for item in status.instances if item.instance == "r0")
    assert stale.role == "leader" and not stale.fresh
    assert status.applied_revision == "abc123"  # the last applied/no_changes pass, not the error
    assert status.last_reconcile is not None and status.last_reconcile.outcome == "error"
    assert [run.trigger for run in status.reconcile_runs] == ["cli", "resync", "watch"]
    assert status.reconcile_runs[2].changes["added"] == 5
    assert status.reconcile_runs[1].errors == [{"file": "misc/broken.yaml", "secret": "***"}]
    assert status.jobs_by_status == {"active": 3, "paused": 1, "completed": 1}
    assert [item.path for item in status.quarantined_files] == ["misc/broken.yaml"]
    assert status.leader.state == "alive"
    assert status.drift.model_dump() == {
        "missing_scheduler_row": 1,  # delta-drift
        "scheduler_paused": 0,
        "scheduler_active": 0,
        "unexpected_scheduler_row": 0,
        "foreign_scheduler_row": 1,  # foreign-job
    }
    assert [(item.job, item.drift) for item in status.drifted_jobs] == [
        ("delta-drift", "missing_scheduler_row"),
        ("foreign-job", "foreign_scheduler_row"),
    ]
    short = client.get("/api/v1/reconciler?runs=1").json()
    assert len(short["reconcile_runs"]) == 1


def test_health_and_liveness_always_answer(client: TestClient) -> None:
    for path in ("/health", "/health/live"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json()["status"] == "ok" and response.json()["version"]


def test_metrics_label_route_templates(client: TestClient) -> None:
    client.get("/api/v1/jobs/alpha-billing")
    client.get("/api/v1/jobs/nope")
    client.get("/no/such/path")
    client.delete("/api/v1/jobs/alpha-billing")
    text = client.get("/metrics").text
    assert 'reconciler_api_requests_total{route="/api/v1/jobs/{name}",status="200"}' in text
    assert 'reconciler_api_requests_total{route="/api/v1/jobs/{name}",status="404"}' in text
    assert 'reconciler_api_requests_total{route="/api/v1/jobs/{name}",status="405"}' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "alpha-billing" not in text and "/no/such/path" not in text
    assert 'reconciler_api_request_duration_seconds_count{route="/api/v1/jobs/{name}"}' in text
