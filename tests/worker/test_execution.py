"""Fires executed by a real worker on RabbitMQ + Redis + PostgreSQL: outcomes recorded in
the ledger, results in Redis, duplicates executed once, retries, time limits."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.dispatch.publisher import Publisher
from reconciler.dispatch.request import make_request
from tests.dispatch.helpers import make_payload, make_spec

if TYPE_CHECKING:
    from conftest import Rig

pytestmark = [pytest.mark.services, pytest.mark.e2e]


def publish_large_fire(rig: Rig) -> tuple[str, dict[str, Any]]:
    """One fire as the dispatcher publishes it (ledger row, then Publisher), with a body
    several times frame_max; its id and the data the task should get."""
    data = {"text": "é☃ x" * 60_000, "n": 1.5, "nested": {"ünï": [1, None, True]}}
    now = datetime.now(UTC)
    spec = make_spec(
        name="report.big",
        task="reconciler.tasks.example_task",
        kwargs={"data": data},
        expires_seconds=600,
        time_limit_seconds=60,
        retries=2,
        idempotency_key="clé-{job}-{scheduled_time}",
    )
    request = make_request(job=spec.name, payload=make_payload(spec), scheduled_time=now, now=now)
    rig.insert_run(
        request.id, job=request.job, slot=request.slot, task=spec.task, key=request.idempotency_key
    )
    publisher = Publisher(broker_url=rig.settings.broker_url, timeout=10)
    try:
        assert publisher.publish([request]).confirmed == {request.id}
    finally:
        publisher.close()
    return request.id, data


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fires_run_and_their_outcomes_are_recorded(rig: Rig, http_url: str) -> None:
    worker = rig.start_worker("exec")
    report = rig.tmp_path / "out" / "report.csv"
    example = rig.publish(
        "reconciler.tasks.example_task", kwargs={"data": {"n": 1, "api_token": "s3cret"}}
    )
    probe = rig.publish("reconciler.tasks.http_probe", args=[f"{http_url}/ok"])
    written = rig.publish(
        "reconciler.tasks.write_report", args=[str(report)], kwargs={"rows": [{"a": 1, "b": 2}]}
    )
    sql = rig.publish("reconciler.tasks.sql_maintenance", args=["ANALYZE job_runs;"])
    large, large_data = publish_large_fire(rig)
    off_list = rig.publish(
        "reconciler.tasks.sql_maintenance", args=["DELETE FROM job_runs"], max_retries=3
    )
    refused = rig.publish(
        "reconciler.tasks.sql_maintenance",
        args=["SELECT 1; DROP TABLE job_runs"],
        max_retries=3,  # a permanent error is not retried, whatever the policy
    )

    row = rig.wait_status(example, "succeeded", "failed")
    assert row["status"] == "succeeded"
    assert row["worker"] == f"exec@{socket.gethostname()}"
    assert row["started_at"] <= row["finished_at"]
    assert row["error"] is None and row["retries"] == 0 and row["duplicates"] == 0
    summary = json.loads(row["result_summary"])
    assert summary["input"] == {"n": 1, "api_token": "***"}  # redacted in the ledger
    # ... and the untouched result is in Redis, under our prefix, with its TTL.
    assert rig.app.AsyncResult(example).get(timeout=5)["input"]["api_token"] == "s3cret"
    client = rig.redis()
    ttl = client.ttl(f"{rig.settings.redis_prefix}celery-task-meta-{example}")
    assert 0 < ttl <= rig.settings.result_ttl_seconds
    assert "s3cret" not in worker.log()

    assert rig.wait_status(probe, "succeeded", "failed")["status"] == "succeeded"
    assert rig.wait_status(written, "succeeded", "failed")["status"] == "succeeded"
    assert report.read_text().splitlines() == ["a,b", "1,2"]
    assert rig.wait_status(sql, "succeeded", "failed")["status"] == "succeeded"
    assert "rowcount" in json.loads(rig.run(sql)["result_summary"])
    off_list_row = rig.wait_status(off_list, "succeeded", "failed")
    assert (off_list_row["status"], off_list_row["retries"]) == ("failed", 0)
    assert off_list_row["error"] == (
        "PermanentTaskError: statement not allowed: it must start with one of VACUUM, "
        "ANALYZE, REINDEX (RECONCILER_SQL_STATEMENT_ALLOWLIST)"
    )

    refused_row = rig.wait_status(refused, "succeeded", "failed")
    assert refused_row["status"] == "failed"
    assert refused_row["error"] == "PermanentTaskError: only one SQL statement is allowed"
    assert refused_row["retries"] == 0

    # The dispatcher's Publisher (frames encoded by frames.PublishEncoder): a body over
    # frame_max in several frames, non-ASCII kwargs and key, expiration, time limit.
    large_row = rig.wait_status(large, "succeeded", "failed", timeout=60)
    assert (large_row["status"], large_row["error"]) == ("succeeded", None)
    assert rig.app.AsyncResult(large).get(timeout=10)["input"] == large_data

    # A message sent by hand, without our headers, runs unrecorded (and says so).
    by_hand = rig.app.send_task("reconciler.tasks.example_task", kwargs={"data": 7})
    assert by_hand.get(timeout=15)["input"] == 7
    assert "task.unguarded" in worker.log()


def test_the_same_fire_published_twice_executes_once(rig: Rig) -> None:
    worker = rig.start_worker("dup")
    report = rig.tmp_path / "dup.json"
    kwargs = {"rows": [{"run": 1}], "append": True}
    run_id = rig.publish("reconciler.tasks.write_report", args=[str(report)], kwargs=kwargs)
    rig.wait_status(run_id, "succeeded")
    first = rig.app.AsyncResult(run_id).get(timeout=5)

    # A duplicate publish of the same fire (same id, same key): recorded, not executed.
    row = rig.run(run_id)
    resend = {
        "args": [str(report)],
        "kwargs": kwargs,
        "job": row["job_name"],
        "slot": row["scheduled_time"],
        "max_retries": 0,
        "retry_delay_seconds": 0,
        "time_limit": None,
        "soft_time_limit": None,
        "key": run_id,
    }
    rig.send(run_id, "reconciler.tasks.write_report", **resend)
    rig.wait_until(lambda: rig.run(run_id)["duplicates"] == 1, timeout=15, what="a duplicate")

    # Redis forgot the key: the ledger (succeeded) still refuses a second execution.
    client = rig.redis()
    assert client.delete(rig.idem_key(run_id)) == 1
    rig.send(run_id, "reconciler.tasks.write_report", **resend)
    rig.wait_until(
        lambda: rig.run(run_id)["duplicates"] == 2, timeout=15, what="a second duplicate"
    )

    assert len(json.loads(report.read_text())["rows"]) == 1  # written once
    final = rig.run(run_id)
    assert final["status"] == "succeeded"
    assert rig.app.AsyncResult(run_id).get(timeout=5) == first  # the real result stands
    assert worker.log().count("task.duplicate") == 2

    # A duplicate delivered while the fire still runs (concurrency 2): skipped too.
    sleeper = rig.publish("reconciler.tasks.sleep_task", args=[1.5])
    row = rig.wait_status(sleeper, "started")
    rig.send(
        sleeper,
        "reconciler.tasks.sleep_task",
        args=[1.5],
        kwargs={},
        job=row["job_name"],
        slot=row["scheduled_time"],
        max_retries=0,
        retry_delay_seconds=0,
        time_limit=None,
        soft_time_limit=None,
        key=sleeper,
    )
    rig.wait_until(lambda: rig.run(sleeper)["duplicates"] == 1, timeout=15, what="the duplicate")
    assert rig.run(sleeper)["status"] == "started"  # the duplicate did not touch the run
    final = rig.wait_status(sleeper, "succeeded", "failed")
    assert final["status"] == "succeeded"
    assert rig.app.AsyncResult(sleeper).get(timeout=5)["slept"] == 1.5


def test_a_failing_task_retries_as_configured_then_fails(rig: Rig, http_url: str) -> None:
    worker = rig.start_worker("retry")
    failing = rig.publish(
        "reconciler.tasks.fail_task", args=["boom"], max_retries=2, retry_delay_seconds=0
    )
    probe = rig.publish("reconciler.tasks.http_probe", args=[f"{http_url}/down"], max_retries=1)
    row = rig.wait_status(failing, "failed")
    assert row["retries"] == 2
    assert row["error"] == "RuntimeError: boom"
    assert row["finished_at"] is not None
    retried = f'task.retried job="test-job" task="reconciler.tasks.fail_task" id="{failing}"'
    assert worker.log().count(retried) == 2
    probe_row = rig.wait_status(probe, "failed")
    assert probe_row["retries"] == 1
    assert probe_row["error"].startswith("ProbeFailed: ") and "503" in probe_row["error"]
    # The key was released on failure: nothing is left claiming the fire.
    client = rig.redis()
    assert client.get(rig.idem_key(failing)) is None


@pytest.mark.slow
def test_a_task_over_its_time_limit_is_stopped_and_recorded_failed(rig: Rig) -> None:
    rig.start_worker("limits", concurrency=2)
    soft = rig.publish("reconciler.tasks.sleep_task", args=[30], soft_time_limit=1, time_limit=5)
    hard = rig.publish(
        "reconciler.tasks.sleep_task",
        args=[30],
        kwargs={"ignore_soft_limit": True},
        time_limit=2,
        max_retries=2,
    )
    soft_row = rig.wait_status(soft, "failed", "succeeded", timeout=15)
    assert soft_row["status"] == "failed"
    assert soft_row["error"].startswith("SoftTimeLimitExceeded")
    hard_row = rig.wait_status(hard, "failed", "succeeded", timeout=15)
    assert hard_row["status"] == "failed"
    assert hard_row["error"].startswith("TimeLimitExceeded")
    assert hard_row["retries"] == 0  # time limits are not retried
    client = rig.redis()
    # The killed pool process's key was released by the worker's main process.
    assert client.get(rig.idem_key(hard)) is None
    assert rig.app.AsyncResult(hard).state == "FAILURE"
