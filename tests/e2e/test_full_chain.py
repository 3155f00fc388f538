"""The whole product, real processes on real services: YAML -> apply -> fire -> worker
executes -> ledger succeeded with timings -> result in Redis -> read through the API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from reconciler.store.db import create_sync_engine
from tests.e2e.processes import Process, free_port
from tests.polling import wait_until

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.slow]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

JOB = """\
name: e2e-report
task: reconciler.tasks.example_task
schedule: {cron: "*/2 * * * * *"}
kwargs: {data: {n: 1, api_token: canary-e2e-secret}}
queue: high_priority
"""


def test_yaml_to_result_through_the_api(
    tmp_path: Path, pg_url: str, amqp_url: str, redis_prefix: str
) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "report.yaml").write_text(JOB)
    api_port = free_port()
    env = dict(
        os.environ,
        RECONCILER_DATABASE_URL=pg_url,
        RECONCILER_JOBS_DIR=str(jobs),
        RECONCILER_BROKER_URL=amqp_url,
        RECONCILER_RESULT_BACKEND=REDIS_URL,
        RECONCILER_REDIS_URL=REDIS_URL,
        RECONCILER_REDIS_PREFIX=redis_prefix,
        RECONCILER_METRICS_PORT="0",
    )
    apply = Process("apply", ["apply"], env, tmp_path)
    assert apply.popen.wait(120) == 0, apply.log()
    apply.stop()
    processes = [
        Process("daemon", ["run"], env, tmp_path),
        Process("worker", ["worker", "--concurrency", "2"], env, tmp_path),
        Process("api", ["api", "--port", str(api_port)], env, tmp_path),
    ]
    engine = create_sync_engine(pg_url)
    try:

        def succeeded() -> object:
            with engine.connect() as connection:
                return connection.execute(
                    sa.text(
                        "select id, started_at, finished_at, worker, published_at from job_runs "
                        "where job_name = 'e2e-report' and status = 'succeeded' "
                        "order by scheduled_time limit 1"
                    )
                ).first()

        row = wait_until(succeeded, timeout=90, what="a succeeded run in the ledger")
        run_id, started, finished, worker, published = row
        assert published <= started <= finished and worker

        client = redis.Redis.from_url(REDIS_URL)
        stored = client.get(f"{redis_prefix}celery-task-meta-{run_id}")
        client.close()
        assert stored is not None
        meta = json.loads(stored)
        assert meta["status"] == "SUCCESS" and meta["result"]["input"]["n"] == 1  # it ran

        base = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: _get(f"{base}/health/live"), timeout=60, what="the API")
        run = _get(f"{base}/api/v1/runs/{run_id}")
        assert run is not None and run["status"] == "succeeded"
        task = _get(f"{base}/api/v1/tasks/{run_id}")
        assert task is not None and task["state"] == "SUCCESS"
        job = _get(f"{base}/api/v1/jobs/e2e-report")
        assert job is not None and job["status"] == "active"
        for path in ("/api/v1/jobs/e2e-report", f"/api/v1/tasks/{run_id}/result"):
            assert "canary-e2e-secret" not in httpx.get(base + path).text
        for process in processes:
            assert process.alive(), process.log()[-3000:]
    finally:
        codes = {p.name: p.stop() for p in processes}
        engine.dispose()
    assert codes["daemon"] == 0, processes[0].log()[-3000:]


def _get(url: str) -> dict | None:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None
