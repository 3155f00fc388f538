"""`reconcile dev`: the whole system on one machine with no servers at all.

SQLite for state, kombu's `filesystem://` transport as the broker and a `db+sqlite://`
Celery result backend, all under one state folder (default ./.dev). It migrates the
database, then starts three real processes — the daemon (`reconcile run`), a worker
(`reconcile worker`) and the API (`reconcile api`) — applies the jobs folder (the daemon
does, at start), and prints every finished run as it lands in the ledger. Ctrl-C (or
SIGTERM) stops the three cleanly (SIGTERM each, then wait) and exits 0.

The production path is the same code with other URLs (PostgreSQL, RabbitMQ, Redis).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.moments import as_utc, rfc3339

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

HELP = "the embedded all-in-one: daemon + worker + API on SQLite, no servers (Ctrl-C stops)"
STOP_TIMEOUT = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=".dev", help="where state lives (default .dev)")
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="the daemon's /metrics port (default: the API port + 1; 0: off); the worker "
        "serves its own on the next port",
    )


def metrics_ports(args: argparse.Namespace) -> tuple[int, int]:
    """(daemon, worker) metrics ports; 0 is off. Each process serves only its own
    families, so the API's /metrics alone would hide the daemon's and the worker's."""
    daemon = args.port + 1 if args.metrics_port is None else args.metrics_port
    return daemon, daemon + 1 if daemon else 0


def dev_environment(args: argparse.Namespace) -> dict[str, str]:
    """The child processes' environment: every URL points into the state folder.

    The demo helpers (sleep, fail, noop) and the powerful built-ins are allowed here
    unless RECONCILER_TASK_ALLOWLIST says otherwise: SQL maintenance on the dev database
    only, reports only under the state folder."""
    from reconciler.settings import DEV_TASK_ALLOWLIST

    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    jobs_dir = getattr(args, "jobs_dir", None) or os.environ.get("RECONCILER_JOBS_DIR", "jobs.d")
    env = dict(os.environ)
    env.setdefault("RECONCILER_TASK_ALLOWLIST", ",".join(DEV_TASK_ALLOWLIST))
    env.update(
        RECONCILER_STATE_DIR=str(state),
        RECONCILER_DATABASE_URL=f"sqlite:///{state / 'state.db'}",
        RECONCILER_SQL_MAINTENANCE_URL=f"sqlite:///{state / 'state.db'}",
        RECONCILER_REPORT_DIR=str(state / "reports"),
        RECONCILER_BROKER_URL=f"filesystem://{state / 'broker'}",
        RECONCILER_RESULT_BACKEND=f"db+sqlite:///{state / 'results.db'}",
        RECONCILER_REDIS_URL="",
        RECONCILER_JOBS_DIR=str(Path(jobs_dir).resolve()),
        RECONCILER_API_PORT=str(args.port),
        RECONCILER_PROBE_BASE_URL=f"http://127.0.0.1:{args.port}",
        RECONCILER_METRICS_PORT=str(metrics_ports(args)[0]),
        PYTHONUNBUFFERED="1",
    )
    return env


def run(args: argparse.Namespace) -> int:
    from reconciler.store.migrate import upgrade_database

    env = dev_environment(args)
    if not Path(env["RECONCILER_JOBS_DIR"]).is_dir():
        print(f"error: no jobs folder at {env['RECONCILER_JOBS_DIR']}", file=sys.stderr)
        return 1
    upgrade_database(env["RECONCILER_DATABASE_URL"])  # once, before three processes race
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    daemon_metrics, worker_metrics = metrics_ports(args)
    children = {
        "daemon": _spawn(["run", "--no-migrate"], env),
        "worker": _spawn(
            ["worker", "--concurrency", "2", "--loglevel", "WARNING"],
            {**env, "RECONCILER_METRICS_PORT": str(worker_metrics)},
        ),
        "api": _spawn(["api", "--port", str(args.port), "--no-access-log"], env),
    }
    lines = [
        f"reconcile dev: state in {args.state_dir}/, jobs from {env['RECONCILER_JOBS_DIR']}",
        f"  API:      http://127.0.0.1:{args.port}/api/v1/jobs   (Ctrl-C stops everything)",
        f"  metrics:  http://127.0.0.1:{args.port}/metrics (API)",
    ]
    if daemon_metrics:
        lines.append(f"            http://127.0.0.1:{daemon_metrics}/metrics (daemon)")
        lines.append(f"            http://127.0.0.1:{worker_metrics}/metrics (worker)")
    print("\n".join(lines), flush=True)
    try:
        failed = _watch(children, env["RECONCILER_DATABASE_URL"], stop)
    finally:
        _stop_all(children)
    return 1 if failed else 0


def _spawn(arguments: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Each child in its own process group: a terminal's Ctrl-C reaches only us, and we
    # stop the children in order.
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", *arguments], env=env, start_new_session=True
    )


def _watch(
    children: dict[str, subprocess.Popen[bytes]], database_url: str, stop: threading.Event
) -> str | None:
    """Print finished runs until `stop`; returns the name of a child that died, if any."""
    for line in _finished_runs(database_url, stop):
        if line:
            print(line, flush=True)
        for name, child in children.items():
            if child.poll() is not None:
                print(f"reconcile dev: the {name} exited with {child.returncode}", file=sys.stderr)
                return name
    return None


def _finished_runs(database_url: str, stop: threading.Event) -> Iterator[str]:
    import sqlalchemy as sa

    from reconciler.store.db import create_sync_engine
    from reconciler.store.ledger import read_finished_runs

    engine = create_sync_engine(database_url)
    seen_until = datetime.now(UTC)
    try:
        while not stop.wait(1.0):
            try:
                with engine.connect() as connection:
                    rows = read_finished_runs(connection, after=seen_until)
            except sa.exc.OperationalError:
                rows = []  # busy: the next second will do
            for row in rows:
                seen_until = max(seen_until, as_utc(row.finished_at))
                yield _describe(row)
            yield ""  # a heartbeat, so dead children are noticed within a second
    finally:
        engine.dispose()


def _describe(row: Row[Any]) -> str:
    r = row._mapping
    took = ""
    if r["started_at"] and r["finished_at"]:
        took = f" in {(as_utc(r['finished_at']) - as_utc(r['started_at'])).total_seconds():.3f} s"
    slot = rfc3339(as_utc(r["scheduled_time"]))
    detail = f" ({r['error']})" if r["error"] else ""
    return f"  run {r['job_name']} @ {slot}: {r['status']}{took} on {r['worker'] or '?'}{detail}"


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, child in children.items():
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"reconcile dev: the {name} did not stop in time; killing it", file=sys.stderr)
            child.kill()
            child.wait()
