"""Fixtures of the observability tests: promtool, and the real processes to scrape."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from observability import targets as t
from observability.prom import Prometheus, run_prometheus
from tests.conftest import rabbitmqctl
from tests.polling import wait_until

if TYPE_CHECKING:
    from conftest import RedisPrefixes

# One job that fires every 2 seconds, for the daemon (and through it, the worker).
PROBE_JOB = """\
name: observability-probe
task: reconciler.tasks.noop
schedule:
  cron: "*/2 * * * * *"
description: fires often so that the metrics of firing and execution have data
"""


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run does)")
    return found


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("prometheus is missing: apt-get install prometheus (.ci/run does)")
    return found


# Package-scoped: the fleet and its Prometheus stop when the xdist worker leaves this
# folder. Session-scoped, they went on firing and scraping (a daemon, a worker, an API and
# a Prometheus per xdist worker) beside the rest of the suite.
@pytest.fixture(scope="package")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, redis_prefixes: RedisPrefixes
) -> Iterator[t.Fleet]:
    """Every process of TARGETS that exists, started on free loopback ports with its
    own SQLite database, jobs folder, RabbitMQ vhost and Redis key prefix."""
    base = tmp_path_factory.mktemp("fleet")
    jobs_dir = base / "jobs.d"
    jobs_dir.mkdir()
    (jobs_dir / "probe.yaml").write_text(PROBE_JOB)
    db_url = f"sqlite:///{base / 'state.db'}"
    migrate = subprocess.run(
        [str(t.BIN / "reconcile"), "--database-url", db_url, "db", "upgrade"],
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stderr
    redis_prefix = redis_prefixes.new("obs")
    with _rabbitmq_vhost() as broker_url:
        context = {
            "db_url": db_url,
            "jobs_dir": str(jobs_dir),
            "broker_url": broker_url,
            "redis_url": "redis://127.0.0.1:6379/0",
            "redis_prefix": redis_prefix,
        }
        running: list[t.Running] = []
        not_built: list[str] = []
        try:
            for target in t.selected_targets():
                try:
                    running.append(t.start(target, context=context, log_dir=base))
                except t.NotBuilt:
                    not_built.append(target.job)
            if not any(r.target.job in {"reconciler-api", "reconciler-daemon"} for r in running):
                running.append(t.start(t.STAND_IN, context=context, log_dir=base))
            if not_built:
                warnings.warn(
                    f"not scraped, their commands are placeholders: {', '.join(not_built)}",
                    stacklevel=1,
                )
            yield t.Fleet(running, not_built, {**context, "log_dir": str(base)})
        finally:
            for process in running:
                t.stop(process)
            redis_prefixes.clean(redis_prefix)  # the fleet's results and idempotency keys


@pytest.fixture(scope="package")
def prometheus(
    prometheus_binary: str, fleet: t.Fleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """One Prometheus for the fleet, scraping it every second."""
    with run_prometheus(prometheus_binary, fleet, tmp_path_factory.mktemp("prometheus")) as p:
        yield p


@pytest.fixture(scope="package")
def exported(fleet: t.Fleet) -> set[str]:
    """Series names exported by the real processes (see targets.exported_names), once
    the worker has executed a fire: its per-job series (runs, durations, last success)
    exist only from the first run on, so a test that asked first (alone, or first on
    its xdist worker) saw none of them."""
    wait_until(
        lambda: _finished_runs(fleet.context.get("db_url", "")) > 0,
        timeout=90,
        what="the probe job's first finished run in the ledger",
    )
    names: set[str] = set()
    for exposition in fleet.expositions().values():
        names |= t.exported_names(exposition)
    return names


def _finished_runs(db_url: str) -> int:
    """Runs of the fleet's ledger (its SQLite database) that a worker finished."""
    path = db_url.removeprefix("sqlite:///")
    if not path or not Path(path).exists():
        return 0
    with closing(sqlite3.connect(path, timeout=5)) as db:
        try:
            row = db.execute(
                "SELECT count(*) FROM job_runs WHERE status IN ('succeeded', 'failed')"
            ).fetchone()
        except sqlite3.OperationalError:  # locked by a writer: ask again
            return 0
    return int(row[0])


class _Vhost:
    def __init__(self) -> None:
        self.name = f"obs_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> str:
        if shutil.which("rabbitmqctl") is None:
            return "amqp://guest:guest@127.0.0.1:5672//"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return f"amqp://guest:guest@127.0.0.1:5672/{self.name}"

    def __exit__(self, *exc: object) -> None:
        if shutil.which("rabbitmqctl") is not None:
            rabbitmqctl("delete_vhost", self.name)  # retried; a failure is the test's error


def _rabbitmq_vhost() -> _Vhost:
    return _Vhost()


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
