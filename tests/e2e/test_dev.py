"""`reconcile dev` from a clean checkout: it starts the daemon, a worker and the API with
no server at all (SQLite, filesystem broker), a fire is executed and visible through the
API, and Ctrl-C (SIGINT) stops everything cleanly, having written nothing outside its
state folder: `git status --porcelain` of the checkout is empty afterwards."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import REPO_ROOT, free_port
from tests.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_dev_runs_the_examples_without_servers(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "jobs.d", checkout / "jobs.d")
    shutil.copy(REPO_ROOT / ".gitignore", checkout / ".gitignore")
    # The examples fire every 30 s at the most often: one more job of the example task, every
    # second, so that a first run is seconds away, not up to 30.
    (checkout / "jobs.d" / "every-second.yaml").write_text(
        'name: every-second\ntask: reconciler.tasks.example_task\nschedule: {cron: "* * * * * *"}\n'
    )
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "examples"], check=True)
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    # Point every service URL at a closed port: the embedded system must not use them.
    env.update(
        RECONCILER_REDIS_URL="redis://127.0.0.1:1/0",
        RECONCILER_BROKER_URL="amqp://guest:guest@127.0.0.1:1//",
    )
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "dev",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
        ],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def a_run_succeeded() -> bool:
            return "succeeded" in (tmp_path / "dev.log").read_text(errors="replace")

        wait_until(a_run_succeeded, timeout=120, what="a finished run printed by reconcile dev")
        jobs = httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs", timeout=10).json()
        assert {item["name"] for item in jobs["items"]} >= {"example-task", "invoice-sweep"}
        runs = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/jobs/example-task/runs", timeout=10
        ).json()
        assert any(run["status"] == "succeeded" for run in runs["items"]) or a_run_succeeded()
        # Each finished run is one line whose time is RFC 3339 UTC, as every time printed.
        printed = (tmp_path / "dev.log").read_text(errors="replace")
        assert re.search(r"^  run [a-z-]+ @ \d{4}-\d\d-\d\dT[\d:.]+Z: succeeded", printed, re.M)
        # The daemon's metrics are served too (the API's /metrics has only the API's).
        daemon = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert "reconciler_leader 1.0" in daemon
        assert "reconciler_api_requests_total" not in daemon
        api = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "reconciler_api_requests_total" in api and "reconciler_leader" not in api
        assert f"http://127.0.0.1:{metrics_port}/metrics (daemon)" in (
            tmp_path / "dev.log"
        ).read_text(errors="replace")
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert process.wait(60) == 0, (tmp_path / "dev.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()
    assert (checkout / ".dev" / "state.db").exists()
    assert (checkout / ".dev" / "broker" / "control").is_dir()  # kombu's exchange tables
    status = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=all"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    assert status == "", f"reconcile dev wrote outside its state folder:\n{status}"
