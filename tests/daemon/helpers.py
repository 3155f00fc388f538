"""Helpers of the daemon tests: real `reconcile run` processes, the ledger, the broker.

Every daemon is a real subprocess with its own environment (`RECONCILER_*`), its output
in a log file (a pipe nobody reads would fill up and block the daemon), its own process
group, and is always ended BY ITS PID (`DaemonProcess.stop/kill`): the fixtures end every
process they started, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from kombu import Connection

from tests.conftest import TEST_TASK_ALLOWLIST, fresh_database, fresh_vhost
from tests.polling import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("default", "high_priority", "low_priority", "scheduled")
TASK = "reconciler.tasks.noop"


def job_yaml(name: str, *, cron: str = "* * * * * *", **fields: object) -> str:
    """One job document. `max_concurrent_runs: 1000` by default: no worker runs in these
    tests, so with the default (1) every slot after the first would be skipped (overlap)."""
    fields.setdefault("max_concurrent_runs", 1000)
    lines = [f"name: {name}", f"task: {TASK}", f'schedule: {{cron: "{cron}"}}']
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def write_jobs(jobs_dir: Path, names: Iterable[str], **fields: object) -> None:
    for name in names:
        (jobs_dir / f"{name}.yaml").write_text(job_yaml(name, **fields))


@dataclass
class DaemonProcess:
    """One `reconcile run`, started by `start()`; `stop()` (SIGTERM) or `kill()` (SIGKILL)."""

    instance: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> DaemonProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "run"],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C of pytest must not reach it half-way
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM; wait for a clean exit (SIGKILL after `timeout`). Returns the exit code."""
        if self.process is None:
            return None
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Cluster:
    """Daemons sharing one database and one jobs folder (the fixture `cluster`)."""

    def __init__(self, *, root: Path, db_url: str, broker_url: str, **settings: str) -> None:
        self.root = root
        self.jobs_dir = root / "jobs.d"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url
        self.broker_url = broker_url
        self.settings = settings
        self.daemons: list[DaemonProcess] = []
        self.engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))

    def env(self, instance: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        env.update(
            RECONCILER_DATABASE_URL=self.db_url,
            RECONCILER_JOBS_DIR=str(self.jobs_dir),
            RECONCILER_BROKER_URL=self.broker_url,
            RECONCILER_METRICS_PORT="0",
            RECONCILER_INSTANCE_ID=instance,
            RECONCILER_TASK_ALLOWLIST=TEST_TASK_ALLOWLIST,  # the demo helpers the tests use
            PYTHONUNBUFFERED="1",
        )
        env.update({f"RECONCILER_{k.upper()}": v for k, v in {**self.settings, **extra}.items()})
        return env

    def start(self, instance: str, **extra: str) -> DaemonProcess:
        daemon = DaemonProcess(
            instance, self.env(instance, **extra), self.root / f"{instance}.log"
        ).start()
        self.daemons.append(daemon)
        return daemon

    def stop_all(self) -> None:
        for daemon in self.daemons:
            daemon.stop(timeout=20)
        self.engine.dispose()

    # --- the database -------------------------------------------------------------------
    def rows(self, sql: str, **params: object) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params))

    def scalar(self, sql: str, **params: object) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def leader(self) -> tuple[str, int] | None:
        """(instance, epoch) of the recorded leader with the newest epoch, if any."""
        try:
            rows = self.rows(
                "SELECT instance, epoch FROM reconciler_instances WHERE role = 'leader' "
                "ORDER BY epoch DESC LIMIT 1"
            )
        except sa.exc.ProgrammingError:  # not migrated yet
            return None
        return (rows[0][0], rows[0][1]) if rows else None

    def ledger(self, job_prefix: str = "") -> list[Any]:
        return self.rows(
            "SELECT id, job_name, scheduled_time, status, reason, fired_at, duplicates "
            "FROM job_runs WHERE job_name LIKE :p ORDER BY job_name, scheduled_time",
            p=f"{job_prefix}%",
        )

    def count_runs(self, status: str | None = None) -> int:
        """Ledger rows (with `status`); 0 while the daemons have not migrated yet."""
        try:
            return self._count_runs(status)
        except sa.exc.ProgrammingError:
            return 0

    def _count_runs(self, status: str | None) -> int:
        if status is None:
            return int(self.scalar("SELECT count(*) FROM job_runs"))
        return int(self.scalar("SELECT count(*) FROM job_runs WHERE status = :s", s=status))


@contextmanager
def fresh_cluster(root: Path) -> Iterator[Cluster]:
    """A Cluster on its own fresh database and vhost, with the fixture `make_cluster`'s
    defaults; its daemons stopped and both dropped afterwards. For a test that repeats
    an attempt with fresh state (a fault whose timing window it may miss)."""
    with fresh_database() as db_url, fresh_vhost() as amqp_url:
        cluster = Cluster(
            root=root,
            db_url=db_url,
            broker_url=amqp_url,
            resync_interval="5",
            settle_seconds="0.1",
        )
        try:
            yield cluster
        finally:
            cluster.stop_all()


def wait_for_next_term(cluster: Cluster, epoch: int, *, timeout: float = 30) -> tuple[str, int]:
    """(instance, epoch) of the first leader recorded with an epoch newer than `epoch`."""
    found: tuple[str, int] = wait_until(
        lambda: (lead := cluster.leader()) and lead[1] > epoch and lead,
        timeout=timeout,
        what=f"a leadership term after epoch {epoch}",
    )
    return found


def wait_for_slots_after(
    cluster: Cluster, moment: datetime, count: int, *, timeout: float, what: str
) -> None:
    """Until the ledger holds `count` rows of slots after `moment`."""
    wait_until(
        lambda: (
            cluster.scalar("SELECT count(*) FROM job_runs WHERE scheduled_time > :t", t=moment)
            >= count
        ),
        timeout=timeout,
        what=what,
    )


class BrokerCounter:
    """Consumes every message of the vhost's queues (no worker runs): task ids, in order."""

    def __init__(self, amqp_url: str, queues: Iterable[str] = QUEUES) -> None:
        self.amqp_url = amqp_url
        self.queues = tuple(queues)
        self.task_ids: list[str] = []
        self.headers: list[dict[str, Any]] = []

    def drain(self, *, idle: float = 0.5) -> int:
        """Consume what is in the queues now (until `idle` s without a message).
        Returns how many were consumed. Queues not yet declared are skipped."""
        count = 0
        with Connection(self.amqp_url, connect_timeout=5) as connection:
            for name in self.queues:
                # A channel per queue: a passive declare of a missing queue closes it.
                channel = connection.channel()
                try:
                    count += self._drain_queue(channel, name, idle=idle)
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
        return count

    def _drain_queue(self, channel: Any, name: str, *, idle: float) -> int:
        try:
            channel.queue_declare(queue=name, passive=True)
        except Exception:  # not declared: nothing was ever published there
            return 0
        count = 0
        deadline = time.monotonic() + idle
        while time.monotonic() < deadline:
            message = channel.basic_get(queue=name, no_ack=False)
            if message is None:
                time.sleep(0.02)
                continue
            self.task_ids.append(message.headers["id"])
            self.headers.append(message.headers)
            channel.basic_ack(message.delivery_tag)
            count += 1
            deadline = time.monotonic() + idle
        return count


def seconds_between(first: datetime, last: datetime) -> list[datetime]:
    """Every whole second from `first` to `last`, both included."""
    moments, moment = [], first
    while moment <= last:
        moments.append(moment)
        moment += timedelta(seconds=1)
    return moments


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
