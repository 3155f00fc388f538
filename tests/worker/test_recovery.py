"""A worker that dies mid-task: the fire is redelivered and completed exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Rig

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.slow]


def test_a_fire_survives_kill_9_of_its_worker(rig: Rig) -> None:
    first = rig.start_worker("first", concurrency=1)
    run_id = rig.publish("reconciler.tasks.sleep_task", args=[2])
    started = rig.wait_status(run_id, "started")
    assert started["worker"] == f"first@{socket.gethostname()}"
    first.kill9()  # the whole process group: main process and pool, no cleanup at all

    # The dead worker's key is still "in progress" until its lease lapses; the new worker
    # gets the message back (redelivered, acks_late) and waits out the lease, then runs it.
    assert rig.redis().get(rig.idem_key(run_id)) is not None
    port = _free_port()
    second = rig.start_worker("second", concurrency=1, via_cli=True, metrics_port=port)
    row = rig.wait_status(run_id, "succeeded", "failed", timeout=30)
    assert row["status"] == "succeeded"
    assert row["worker"] == f"second@{socket.gethostname()}"
    assert row["duplicates"] == 0
    assert first.log().count("task.succeeded") == 0
    succeeded = f'task.succeeded job="test-job" task="reconciler.tasks.sleep_task" id="{run_id}"'
    assert second.log().count(succeeded) == 1
    assert rig.app.AsyncResult(run_id).get(timeout=5)["slept"] == 2
    # Its /metrics sums the pool process's samples (prometheus multiprocess mode).
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert (
        b'reconciler_task_executions_total{status="succeeded",task="reconciler.tasks.sleep_task"}'
        b" 1.0" in metrics
    )
    assert second.stop() == 0  # `reconcile worker` exits cleanly on SIGTERM


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_lost_pool_process_frees_its_fire_at_once(rig: Rig) -> None:
    worker = rig.start_worker("pool", concurrency=1)
    run_id = rig.publish("reconciler.tasks.sleep_task", args=[1])
    rig.wait_status(run_id, "started")
    holder = rig.redis().get(rig.idem_key(run_id))
    assert holder is not None
    os.kill(json.loads(holder)["pid"], signal.SIGKILL)  # the pool process running it
    # The main process releases the key (no lease wait) and requeues the message.
    row = rig.wait_status(run_id, "succeeded", "failed", timeout=15)
    assert row["status"] == "succeeded"
    assert "WorkerLostError" in worker.log()
    assert f"released the idempotency key of lost fire {run_id}" in worker.log()
    succeeded = f'task.succeeded job="test-job" task="reconciler.tasks.sleep_task" id="{run_id}"'
    assert worker.log().count(succeeded) == 1
