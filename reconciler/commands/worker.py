"""`reconcile worker`: a Celery worker on the reconciler's queues.

The same worker as `celery -A reconciler.worker worker -Q default,high_priority,
low_priority,scheduled`, configured from RECONCILER_* (and --database-url). Runs until
SIGTERM or Ctrl-C (Celery's warm shutdown: running tasks finish, then it exits 0).

Metrics: `--metrics-port` (default RECONCILER_METRICS_PORT; 0: off) serves
`/metrics` from the worker's main process, summed over its pool processes
(prometheus_client's multiprocess mode, see `reconciler.observability`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from reconciler.commands._common import settings_from
from reconciler.errors import ConfigError

if TYPE_CHECKING:
    from reconciler.settings import Settings

REDIS_SCHEMES = ("redis://", "rediss://")

HELP = "run a Celery worker on the job queues (until SIGTERM)"
POOLS = ("prefork", "solo", "threads")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=int, default=None, help="pool size (default: number of CPUs)"
    )
    parser.add_argument(
        "--queues",
        default=None,
        help="comma list of queues to consume (default: all of RECONCILER_QUEUES)",
    )
    parser.add_argument(
        "--pool",
        choices=POOLS,
        default="prefork",
        help="prefork (default; the only pool that enforces time limits), solo or threads",
    )
    parser.add_argument("--hostname", default=None, help="node name, e.g. worker1@%%h")
    parser.add_argument("--loglevel", default="INFO", help="worker log level (default INFO)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics on this port (default RECONCILER_METRICS_PORT, else 9102; 0: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default=None,
        help="metrics bind address (default RECONCILER_METRICS_HOST, else 127.0.0.1)",
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.commands.run import metrics_address
    from reconciler.settings import WORKER_METRICS_PORT

    settings = settings_from(args)
    check_services_at_start(settings)
    host, port = metrics_address(args, settings, default_port=WORKER_METRICS_PORT)
    if port:
        from reconciler.observability import (
            check_port_free,
            enable_multiprocess_mode,
            install_worker_hooks,
        )

        # The server starts inside a Celery signal, where a taken port would only be
        # logged (a worker without metrics): check it now, and exit with one line.
        check_port_free(port, host)

        # Before anything imports reconciler.metrics: the metrics pick their storage
        # (files shared with the pool processes) when they are created.
        enable_multiprocess_mode()
        from reconciler.metrics import WORKER_METRICS

        install_worker_hooks(port=port, host=host, families=WORKER_METRICS)
    from reconciler.worker.app import create_celery_app

    app = create_celery_app(settings)
    app.worker_main(worker_argv(args, default_queues=settings.queues))
    return 0


def check_services_at_start(settings: Settings) -> None:
    """The broker, Redis (idempotency keys) and a Redis result backend, each checked
    once (or for RECONCILER_STARTUP_TIMEOUT, with backoff) before Celery starts: Celery
    itself would retry an unreachable broker forever, in its log only."""
    from reconciler.startup import check_broker, check_redis, retry_at_start

    def check_all() -> None:
        check_broker(settings.broker_url)
        if settings.redis_url:
            check_redis(settings.redis_url)
        backend = settings.result_backend
        if backend.startswith(REDIS_SCHEMES) and backend != settings.redis_url:
            check_redis(backend, setting="RECONCILER_RESULT_BACKEND")

    retry_at_start(check_all, timeout=settings.startup_timeout)


def worker_argv(args: argparse.Namespace, *, default_queues: tuple[str, ...]) -> list[str]:
    """The `celery worker` command line for these flags (pure: testable without a worker)."""
    queues = args.queues or ",".join(default_queues)
    argv = ["worker", f"--queues={queues}", f"--pool={args.pool}", f"--loglevel={args.loglevel}"]
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        argv.append(f"--concurrency={args.concurrency}")
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    return argv
