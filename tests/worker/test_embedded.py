"""The embedded mode: no RabbitMQ, no Redis, no PostgreSQL. A `filesystem://` broker,
a `db+sqlite:///` result backend and the SQLite ledger, which is also the only guard."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from reconciler.worker.app import filesystem_folder

if TYPE_CHECKING:
    from conftest import Rig

pytestmark = [pytest.mark.e2e]


def test_fires_run_on_the_serverless_transports(embedded_rig: Rig) -> None:
    rig = embedded_rig
    folder = filesystem_folder(rig.settings)
    assert folder == rig.tmp_path / "broker"  # beside the SQLite database
    # Expires (0.5 s) before the worker is up (~2 s): the worker drops it and we record it.
    # (RabbitMQ drops expired messages itself, before any worker sees them.)
    expiring = rig.publish("reconciler.tasks.example_task", kwargs={"data": 1}, expires=0.5)
    # `reconcile worker` with the threads pool, as a single small process might run it.
    worker = rig.start_worker("embedded", concurrency=2, pool="threads", via_cli=True)
    report = rig.tmp_path / "embedded.json"
    run_id = rig.publish(
        "reconciler.tasks.write_report",
        args=[str(report)],
        kwargs={"rows": [{"n": 1}], "append": True},
    )
    row = rig.wait_status(run_id, "succeeded", "failed", timeout=30)
    assert row["status"] == "succeeded", worker.log()[-3000:]
    assert rig.app.AsyncResult(run_id).get(timeout=10)["rows"] == 1

    # Without Redis the ledger's conditional UPDATE is the claim: a duplicate publish of a
    # finished fire is recorded and not executed.
    rig.send(
        run_id,
        "reconciler.tasks.write_report",
        args=[str(report)],
        kwargs={"rows": [{"n": 1}], "append": True},
        job=row["job_name"],
        slot=row["scheduled_time"],
        max_retries=0,
        retry_delay_seconds=0,
        time_limit=None,
        soft_time_limit=None,
        key=run_id,
    )
    rig.wait_until(lambda: rig.run(run_id)["duplicates"] == 1, timeout=30, what="the duplicate")
    assert len(json.loads(report.read_text())["rows"]) == 1
    assert rig.run(run_id)["status"] == "succeeded"
    expired = rig.wait_status(expiring, "expired", "succeeded")
    assert (expired["status"], expired["reason"]) == ("expired", "expired before a worker took it")
    assert "rt_" not in worker.log() and "amqp://" not in worker.log()
