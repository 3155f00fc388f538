"""The worker's log lines have the shape of every other process's (README: "every time,
in every output and log line, is RFC 3339 UTC with a `Z`"; "JSON lines with
RECONCILER_LOG_FORMAT=json"; lines carry `job=NAME` where there is one): `reconcile
worker` as an operator starts it, not Celery's `[2026-12-02 11:36:20,098: INFO/...]`."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Rig

pytestmark = [pytest.mark.services, pytest.mark.e2e]

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")


def _run_one(rig: Rig, name: str) -> list[str]:
    worker = rig.start_worker(name, via_cli=True, concurrency=1)
    run_id = rig.publish("reconciler.tasks.example_task", kwargs={"data": 1}, job="log-job")
    assert rig.wait_status(run_id, "succeeded", "failed")["status"] == "succeeded"
    worker.stop()
    return worker.log().splitlines()


def test_text_log_lines_start_with_an_rfc3339_utc_time(rig: Rig) -> None:
    lines = _run_one(rig, "text")
    logged = [line for line in lines if "task.started" in line or "task.succeeded" in line]
    assert len(logged) == 2, lines[-40:]
    assert all(RFC3339_Z.match(line) for line in logged), logged
    assert all(line.endswith(" job=log-job") for line in logged), logged
    ready = [line for line in lines if line.endswith(" ready.")]
    assert ready and RFC3339_Z.match(ready[0]), lines[-40:]


def test_json_log_lines_with_log_format_json(rig: Rig) -> None:
    rig.env["RECONCILER_LOG_FORMAT"] = "json"
    lines = _run_one(rig, "json")
    documents = [json.loads(line) for line in lines if line.startswith("{")]
    events = {doc["message"].split()[0]: doc for doc in documents}
    assert {"task.started", "task.succeeded"} <= set(events), lines[-40:]
    for event in ("task.started", "task.succeeded"):
        assert events[event]["job"] == "log-job"
        assert re.fullmatch(r"[\d-]+T[\d:.]+Z", events[event]["time"])
    assert any(doc["message"].endswith(" ready.") for doc in documents), lines[-40:]
