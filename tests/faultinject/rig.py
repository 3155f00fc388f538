"""A whole installation as real processes, for fault tests: `reconcile run` daemons and
`reconcile worker`s (the console scripts, as users run them) on the databases, Redis
and broker the test chose, jobs running `fault_tasks.tally` (executions counted in a
file, outside the ledger). Every process is ended BY ITS PID (`FaultRig.close`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.polling import wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RECONCILE = str(Path(sys.executable).parent / "reconcile")
TASK = "fault_tasks.tally"


@dataclass
class Proc:
    """One console-script process in its own session (so signals reach only it)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGCONT (in case it is frozen), SIGTERM, then SIGKILL of its group."""
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


class FaultRig:
    def __init__(
        self,
        root: Path,
        *,
        db_url: str,
        broker_url: str,
        redis_url: str,
        lease_seconds: int = 6,
        **settings: str,
    ) -> None:
        self.root = root
        self.jobs_dir = root / "jobs.d"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.tally = root / "executions.txt"
        self.db_url = db_url
        self.broker_url = broker_url
        self.redis_url = redis_url
        self.prefix = f"f{uuid.uuid4().hex[:8]}:"
        self.settings = {
            "database_url": db_url,
            "jobs_dir": str(self.jobs_dir),
            "broker_url": broker_url,
            "redis_url": redis_url,
            "result_backend": redis_url,
            "redis_prefix": self.prefix,
            "metrics_port": "0",
            "task_modules": "fault_tasks",
            "task_allowlist": "reconciler.tasks.*,fault_tasks.*",
            "idempotency_lease_seconds": str(lease_seconds),
            "resync_interval": "5",
            "settle_seconds": "0.1",
            "publish_timeout": "2",
            **settings,
        }
        self.procs: list[Proc] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.engine = sa.create_engine(
            db_url.replace("postgresql://", "postgresql+psycopg://"),
            pool_pre_ping=True,
            connect_args={"connect_timeout": 3},
        )
        self._app: Any = None

    # --- processes ----------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        merged = {**self.settings, **extra}
        env.update({f"RECONCILER_{key.upper()}": value for key, value in merged.items()})
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(self, name: str, argv: list[str], **extra: str) -> Proc:
        log_path = self.root / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=self.env(**extra),
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, process, log_path)
        self.procs.append(proc)
        return proc

    def daemon(self, instance: str) -> Proc:
        return self._spawn(instance, [RECONCILE, "run"], instance_id=instance)

    def worker(self, name: str, *, concurrency: int = 4) -> Proc:
        proc = self._spawn(
            name,
            [
                RECONCILE,
                "worker",
                f"--concurrency={concurrency}",
                f"--hostname={name}@%h",
                "--metrics-port=0",
            ],
        )
        wait_until(
            lambda: " ready." in proc.output() or not proc.alive(),
            timeout=60,
            what=f"worker {name} ready",
        )
        assert proc.alive(), proc.output()
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=20)
        self.engine.dispose()

    # --- jobs ---------------------------------------------------------------------------
    def write_jobs(
        self,
        names: Iterable[str],
        *,
        cron: str = "* * * * * *",
        seconds: float = 0.0,
        **fields: object,
    ) -> None:
        for name in names:
            kwargs = {"path": str(self.tally), "seconds": seconds}
            self.jobs[name] = kwargs
            lines = [
                f"name: {name}",
                f"task: {TASK}",
                f'schedule: {{cron: "{cron}"}}',
                f"kwargs: {{path: '{self.tally}', seconds: {seconds}}}",
                *(f"{key}: {value}" for key, value in fields.items()),
            ]
            (self.jobs_dir / f"{name}.yaml").write_text("\n".join(lines) + "\n")

    def remove_jobs(self) -> None:
        for path in self.jobs_dir.glob("*.yaml"):
            path.unlink()

    # --- the record ---------------------------------------------------------------------
    def rows(self, sql: str, **params: object) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params))

    def safe_rows(self, sql: str, **params: object) -> list[Any]:
        """`rows`, or [] while the database does not answer or is not migrated yet."""
        try:
            return self.rows(sql, **params)
        except sa.exc.SQLAlchemyError:
            return []

    def ledger(self) -> list[Any]:
        return self.rows(
            "SELECT id, job_name, scheduled_time, status, reason, duplicates, takeovers, "
            "published_at, started_at, finished_at, fired_at FROM job_runs "
            "ORDER BY scheduled_time"
        )

    def executions(self) -> Counter[str]:
        """Fire id -> how many times its task body ran (from the tally file)."""
        if not self.tally.exists():
            return Counter()
        return Counter(line.split()[0] for line in self.tally.read_text().splitlines() if line)

    def in_flight(self) -> list[Any]:
        return self.safe_rows(
            "SELECT id, job_name, scheduled_time, idempotency_key FROM job_runs "
            "WHERE status = 'started'"
        )

    # --- a second delivery of a fire ----------------------------------------------------
    def deliver_again(self, row: Any) -> None:
        """Publish the fire's message once more, exactly as the dispatcher did (same task
        id and headers): a re-publish after a lost confirm, or a redelivery."""
        if self._app is None:
            from reconciler.settings import Settings
            from reconciler.worker.app import create_celery_app

            self._app = create_celery_app(
                Settings(broker_url=self.broker_url, result_backend="", redis_url="")
            )
        self._app.send_task(
            TASK,
            args=[],
            kwargs=self.jobs[row.job_name],
            queue="default",
            task_id=row.id,
            headers={
                "idempotency_key": row.idempotency_key,
                "job": row.job_name,
                "revision": None,
                "scheduled_time": row.scheduled_time.astimezone(UTC).isoformat(),
                "max_retries": 0,
                "retry_delay_seconds": 10,
            },
        )
