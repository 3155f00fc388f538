"""Metrics of a prefork Celery worker (reconciler.observability's multiprocess mode), with
a real `celery worker` on a serverless broker: the pool's children count, the main
process serves their sum, and the gauges of exited children go away."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability.targets import free_port
from reconciler.observability import setup_worker_metrics

TASKS = 6

APP = textwrap.dedent(
    """
    import os, time

    from reconciler.observability import enable_multiprocess_mode, install_worker_hooks

    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # else: the `celery -A` form
        enable_multiprocess_mode(os.environ["OBS_MULTIPROC_DIR"])
    install_worker_hooks(port=int(os.environ["OBS_METRICS_PORT"]), host="127.0.0.1")

    from celery import Celery

    from reconciler import metrics

    app = Celery("obs")
    app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": os.environ["OBS_BROKER_DIR"],
            "data_folder_out": os.environ["OBS_BROKER_DIR"],
            # kombu keeps its exchange tables in ./control unless told: not in a checkout.
            "control_folder": os.environ["OBS_BROKER_DIR"] + "/control",
            "polling_interval": 0.05,
        },
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
    )


    @app.task(name="obs.work")
    def work(job):
        metrics.TASK_EXECUTIONS.labels("obs.work", "succeeded").inc()
        metrics.JOB_LAST_SUCCESS.labels(job).set(time.time())
        # A live gauge written by a child: it must vanish when the child exits.
        metrics.LEADER.set(1)
        return os.getpid()
    """
)


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _send(tmp_path: Path, broker: Path) -> None:
    from celery import Celery

    sender = Celery("obs-sender")
    sender.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(broker),
            "data_folder_out": str(broker),
            # kombu writes its exchange tables to ./control unless told (the checkout).
            "control_folder": str(broker / "control"),
        },
    )
    for index in range(TASKS):
        sender.send_task("obs.work", args=[f"job-{index % 2}"])


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("form", ["reconcile-worker", "celery-env"])
def test_a_prefork_worker_exports_the_sum_of_its_children(tmp_path: Path, form: str) -> None:
    # reconcile-worker: enable_multiprocess_mode() in code. celery-env: the `celery -A`
    # form, $PROMETHEUS_MULTIPROC_DIR set by the environment, with a previous run's file.
    (tmp_path / "obs_worker_app.py").write_text(APP)
    broker = tmp_path / "broker"
    broker.mkdir()
    samples_dir = tmp_path / "samples"
    stale = samples_dir / "counter_999999.db"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "OBS_MULTIPROC_DIR": str(samples_dir),
        "OBS_METRICS_PORT": str(port),
        "OBS_BROKER_DIR": str(broker),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if form == "celery-env":
        samples_dir.mkdir()
        stale.write_bytes(b"\0" * 16)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(samples_dir)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "obs_worker_app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--max-tasks-per-child=1",  # every child exits after one task
            "--loglevel=WARNING",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _send(tmp_path, broker)
        deadline = time.monotonic() + 40
        done = {}
        while time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            try:
                done = _samples(port)
            except OSError:
                time.sleep(0.2)
                continue
            executed = done.get(
                (
                    "reconciler_task_executions_total",
                    (("status", "succeeded"), ("task", "obs.work")),
                )
            )
            children = {
                int(path.stem.rsplit("_", 1)[1]) for path in samples_dir.glob("counter_*.db")
            }
            live_children = list(samples_dir.glob("gauge_livemax_*.db"))
            # Done: every task counted, over several (exited) children, and no live gauge
            # left but the main process's.
            if executed == TASKS and len(children) >= 3 and len(live_children) == 1:
                break
            time.sleep(0.2)
        log_text = (tmp_path / "worker.log").read_text()
        assert done, log_text
        key = ("reconciler_task_executions_total", (("status", "succeeded"), ("task", "obs.work")))
        assert done.get(key) == TASKS, log_text
        # Counted by several children (one task each), summed without a pid label.
        assert len(children) >= 3, children
        # The children that set the leader gauge have exited: only the main process's 0.
        assert done[("reconciler_leader", ())] == 0, sorted(samples_dir.iterdir())
        assert len(live_children) == 1, live_children
        # A `max` gauge outlives the child that set it.
        for job in ("job-0", "job-1"):
            stamp = done[("reconciler_job_last_success_timestamp_seconds", (("job_name", job),))]
            assert time.time() - 60 < stamp <= time.time()
        assert not stale.exists()
        # The closed vocabularies are exported by a worker too (created at import).
        assert ("reconciler_reconcile_changes_total", (("action", "add"),)) in done
        # ... and the task's zeros (install_worker_hooks: track_task before the fork).
        failed = ("reconciler_task_executions_total", (("status", "failed"), ("task", "obs.work")))
        assert done[failed] == 0
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()


def test_without_multiprocess_mode_the_worker_serves_its_own_registry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A solo or threads pool: one process, the default registry; a warning says so.
    import reconciler.metrics  # noqa: F401 - registers the metrics in the default registry

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert setup_worker_metrics(0) is None
    server = setup_worker_metrics(free_port(), "127.0.0.1")
    assert server is not None
    try:
        assert ("reconciler_leader", ()) in _samples(server.port)
    finally:
        server.close()
    assert "not counted" in caplog.text


def test_multiprocess_mode_refuses_to_start_late(tmp_path: Path) -> None:
    # Metrics created before multiprocess mode would never reach the shared files.
    code = (
        "import reconciler.metrics\n"
        "from reconciler.observability import enable_multiprocess_mode\n"
        f"enable_multiprocess_mode({str(tmp_path)!r})\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "RuntimeError: reconciler.metrics was imported before" in result.stderr


def test_multiprocess_mode_removes_the_files_of_a_previous_run(tmp_path: Path) -> None:
    stale = tmp_path / "counter_999999.db"
    stale.write_bytes(b"\0" * 16)
    code = (
        "import os\n"
        "from reconciler.observability import enable_multiprocess_mode\n"
        f"enable_multiprocess_mode({str(tmp_path)!r})\n"
        "from reconciler import metrics\n"
        "metrics.DRIFT_REPAIRS.inc()\n"
        "print(sorted(os.listdir(os.environ['PROMETHEUS_MULTIPROC_DIR'])))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert "counter_" in result.stdout  # this run's own samples
