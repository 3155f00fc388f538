"""Real workers for the worker tests: a Celery worker subprocess per test, on the test's
own RabbitMQ vhost, PostgreSQL database and Redis key prefix; fires published exactly as
the dispatcher publishes them (ledger row first, then send_task with the headers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from reconciler.core.fires import fire_id
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import job_runs
from reconciler.worker.app import create_celery_app
from tests.polling import wait_until

BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_BASE = os.environ.get("TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")
QUEUES = "default,high_priority,low_priority,scheduled"
LEASE_SECONDS = 3  # short, so that recovery after a crashed worker is quick


@dataclass
class WorkerProcess:
    """A worker subprocess in its own process group (so kill -9 reaches its pool too)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.name} exited {self.process.returncode}:\n{self.log()}")
            return " ready." in self.log()

        wait_until(ready, timeout=timeout, what=f"worker {self.name} to be ready")

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)  # the main process stops its pool
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


@dataclass
class Rig:
    """Settings, a publishing app and ledger access for one test."""

    settings: Settings
    app: Celery
    engine: sa.Engine
    tmp_path: Path
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(
        self,
        name: str,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        via_cli: bool = False,
        ready: bool = True,
        metrics_port: int = 0,
    ) -> WorkerProcess:
        log_path = self.tmp_path / f"worker-{name}.log"
        if via_cli:
            command = [
                str(BIN / "reconcile"),
                "worker",
                f"--concurrency={concurrency}",
                f"--pool={pool}",
                f"--hostname={name}@%h",
                f"--metrics-port={metrics_port}",
                "--metrics-host=127.0.0.1",
            ]
        else:
            command = [
                str(BIN / "celery"),
                "-A",
                "reconciler.worker",
                "worker",
                "-Q",
                QUEUES,
                f"--concurrency={concurrency}",
                f"--pool={pool}",
                f"--hostname={name}@%h",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
            ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.tmp_path,
            )
        worker = WorkerProcess(name, process, log_path)
        self.workers.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    def publish(
        self,
        task: str,
        *,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        job: str = "test-job",
        slot: datetime | None = None,
        max_retries: int = 0,
        retry_delay_seconds: int = 0,
        time_limit: int | None = None,
        soft_time_limit: int | None = None,
        insert: bool = True,
        key: str | None = None,
        expires: float = 600,
    ) -> str:
        """Publish one fire as the dispatcher does; returns the fire id."""
        slot = slot or datetime.now(UTC).replace(microsecond=0) + timedelta(
            microseconds=uuid.uuid4().int % 1_000_000
        )
        run_id = fire_id(job, slot)
        if insert:
            self.insert_run(run_id, job=job, slot=slot, task=task, key=key or run_id)
        self.send(
            run_id,
            task,
            args=args,
            kwargs=kwargs,
            job=job,
            slot=slot,
            max_retries=max_retries,
            retry_delay_seconds=retry_delay_seconds,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            key=key or run_id,
            expires=expires,
        )
        return run_id

    def send(
        self,
        run_id: str,
        task: str,
        *,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        job: str,
        slot: datetime,
        max_retries: int,
        retry_delay_seconds: int,
        time_limit: int | None,
        soft_time_limit: int | None,
        key: str,
        expires: float = 600,
    ) -> None:
        self.app.send_task(
            task,
            args=args or [],
            kwargs=kwargs or {},
            queue="default",
            task_id=run_id,
            headers={
                "idempotency_key": key,
                "job": job,
                "revision": None,
                "scheduled_time": slot.isoformat(),
                "max_retries": max_retries,
                "retry_delay_seconds": retry_delay_seconds,
            },
            expires=expires,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            retries=0,
        )

    def insert_run(self, run_id: str, *, job: str, slot: datetime, task: str, key: str) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(
                job_runs.insert().values(
                    id=run_id,
                    job_name=job,
                    scheduled_time=slot,
                    status="published",
                    task=task,
                    queue="default",
                    idempotency_key=key,
                    fired_at=now,
                    published_at=now,
                    updated_at=now,
                )
            )

    wait_until = staticmethod(wait_until)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(REDIS_URL)

    def idem_key(self, key: str) -> str:
        return f"{self.settings.redis_prefix}idem:{key}"

    def run(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(job_runs.select().where(job_runs.c.id == run_id)).one()
        return dict(row._mapping)

    def wait_status(self, run_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        return wait_until(
            lambda: (row := self.run(run_id))["status"] in statuses and row,
            timeout=timeout,
            what=f"run {run_id} to reach {statuses}",
        )


def _worker_env(settings: Settings) -> dict[str, str]:
    # Nothing of the caller's own configuration leaks into the worker (nor a shared
    # prometheus multiprocess folder).
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RECONCILER_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        RECONCILER_BROKER_URL=settings.broker_url,
        RECONCILER_RESULT_BACKEND=settings.result_backend,
        RECONCILER_REDIS_URL=settings.redis_url,
        RECONCILER_REDIS_PREFIX=settings.redis_prefix,
        RECONCILER_DATABASE_URL=settings.database_url,
        RECONCILER_IDEMPOTENCY_LEASE_SECONDS=str(settings.idempotency_lease_seconds),
        RECONCILER_REPORT_DIR=str(settings.report_dir),
        RECONCILER_SQL_MAINTENANCE_URL=settings.sql_maintenance_url or "",
        RECONCILER_LOG_LEVEL="INFO",
        RECONCILER_METRICS_PORT="0",  # a test that scrapes a worker picks a free port
        PYTHONUNBUFFERED="1",
    )
    return env


def _rig(settings: Settings, tmp_path: Path) -> Iterator[Rig]:
    app = create_celery_app(settings)
    engine = create_sync_engine(settings.database_url)
    rig = Rig(settings, app, engine, tmp_path, _worker_env(settings))
    try:
        yield rig
    finally:
        for worker in rig.workers:
            # Test workers leave with their vhost and database: no warm shutdown needed
            # (it costs seconds); a test that checks a clean exit calls stop() itself.
            if worker.process.poll() is None:
                worker.kill9()
        app.close()
        engine.dispose()


@pytest.fixture
def pg_migrated(pg_url: str) -> str:
    from reconciler.store.migrate import upgrade_database

    upgrade_database(pg_url)
    return pg_url


@pytest.fixture
def rig(amqp_url: str, pg_migrated: str, redis_prefix: str, tmp_path: Path) -> Iterator[Rig]:
    """RabbitMQ (own vhost) + Redis results and keys (own prefix) + PostgreSQL ledger."""
    settings = Settings(
        broker_url=amqp_url,
        result_backend=REDIS_URL,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        database_url=pg_migrated,
        idempotency_lease_seconds=LEASE_SECONDS,
        # The powerful built-ins, enabled and confined to this test's database and folder.
        sql_maintenance_url=pg_migrated,
        report_dir=tmp_path,
    )
    yield from _rig(settings, tmp_path)


@pytest.fixture
def embedded_rig(sqlite_url: str, tmp_path: Path) -> Iterator[Rig]:
    """No servers at all: filesystem broker, SQLite results, SQLite ledger, no Redis."""
    from reconciler.store.migrate import upgrade_database

    upgrade_database(sqlite_url)
    settings = Settings(
        broker_url="filesystem://",
        result_backend=f"db+sqlite:///{tmp_path / 'results.db'}",
        redis_url="",
        database_url=sqlite_url,
        report_dir=tmp_path,
    )
    yield from _rig(settings, tmp_path)
