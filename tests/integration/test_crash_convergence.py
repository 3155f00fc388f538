"""kill -9 of `reconcile apply` at several points of a 1,000-job apply: the next apply
converges, with nothing lost and nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.workspace import REPO_ROOT, Workspace, job_yaml

pytestmark = [pytest.mark.services, pytest.mark.slow]
JOBS, PER_FILE = 1000, 10


def write_thousand(ws: Workspace, *, cron: str = "*/5 * * * *") -> None:
    for file_index in range(JOBS // PER_FILE):
        text = "---\n".join(
            job_yaml(f"job-{file_index:03d}-{slot}", cron=cron) for slot in range(PER_FILE)
        )
        ws.write(f"team{file_index % 7}/file{file_index:03d}.yaml", text)


def assert_converged(ws: Workspace) -> None:
    result = ws.cli("apply", "--quiet")
    assert result.code == 0, result.err
    assert ws.scalar("select count(*) from scheduled_jobs") == JOBS
    assert ws.scalar("select count(*) from apscheduler_jobs") == JOBS
    assert ws.scalar("select count(distinct spec_hash) from scheduled_jobs") == JOBS
    plan = json.loads(ws.cli("plan", "--format", "json").out)
    assert plan["changes"] == [], plan["summary"]


def kill_at_point(ws: Workspace, point: str) -> None:
    script = Path(__file__).with_name("kill_point.py")
    process = subprocess.Popen(
        [sys.executable, str(script), point],
        env=ws.env(),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the point (or the process ends)
        assert line.strip() == f"AT {point}", process.stderr.read() if process.stderr else ""
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.parametrize("point", ["after_inventory", "after_apply"])
def test_kill_at_a_named_point_then_converge(workspace: Workspace, point: str) -> None:
    write_thousand(workspace)
    kill_at_point(workspace, point)
    # The apply is one transaction: a kill leaves nothing half-written.
    assert workspace.scalar("select count(*) from scheduled_jobs") == 0
    assert workspace.scalar("select count(*) from apscheduler_jobs") == 0
    assert_converged(workspace)


def test_kill_at_timed_points_of_cold_and_changing_applies(workspace: Workspace) -> None:
    assert workspace.cli("db", "upgrade").code == 0
    write_thousand(workspace)
    for delay in (0.5, 1.0, 1.5, 2.5):
        process = workspace.spawn(["apply", "--quiet"])
        time.sleep(delay)  # the kill point itself, not a synchronisation
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        jobs = workspace.scalar("select count(*) from scheduled_jobs")
        rows = workspace.scalar("select count(*) from apscheduler_jobs")
        assert jobs == rows and jobs in (0, JOBS)  # all or nothing
    assert_converged(workspace)
    write_thousand(workspace, cron="0 * * * *")  # now an update of all 1,000
    for delay in (0.8, 1.6):
        process = workspace.spawn(["apply", "--quiet", "--allow-mass-delete"])
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert_converged(workspace)
    assert (
        workspace.scalar(
            "select count(*) from scheduled_jobs where spec::text like '%0 * * * *%'"
            if workspace.db_url.startswith("postgresql")
            else "select count(*) from scheduled_jobs where spec like '%0 * * * *%'"
        )
        == JOBS
    )
