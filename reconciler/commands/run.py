"""`reconcile run`: the reconciler daemon (watch, resync, lead, fire). Runs until SIGTERM
or Ctrl-C, then stops cleanly: in-flight fires are recorded and published, the
leadership is released so a standby takes over at once."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import TYPE_CHECKING

from reconciler.commands._common import EXIT_ERROR, require_jobs_dir, settings_from

if TYPE_CHECKING:
    from reconciler.settings import Settings

HELP = "the daemon: watch jobs.d, reconcile, lead, fire into Celery (until SIGTERM)"
log = logging.getLogger("reconciler.run")
SUPERSEDED_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-migrate", action="store_true", help="do not run `db upgrade` at start"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics on this port (default RECONCILER_METRICS_PORT, else 9101; 0: off)",
    )
    parser.add_argument(
        "--metrics-host",
        default=None,
        help="metrics bind address (default RECONCILER_METRICS_HOST, else 127.0.0.1)",
    )


def metrics_address(
    args: argparse.Namespace, settings: Settings, *, default_port: int
) -> tuple[str, int]:
    """(host, port) for this process's /metrics: flag, else setting, else the default
    port of this kind of process."""
    port = args.metrics_port
    if port is None:
        port = settings.metrics_port if settings.metrics_port is not None else default_port
    return args.metrics_host or settings.metrics_host, port


def run(args: argparse.Namespace) -> int:
    from reconciler.observability import start_metrics_server
    from reconciler.settings import DAEMON_METRICS_PORT
    from reconciler.startup import check_broker, retry_at_start
    from reconciler.wiring import build_daemon

    settings = settings_from(args)
    logging.getLogger("reconciler").setLevel(settings.log_level.upper())
    require_jobs_dir(settings)
    host, port = metrics_address(args, settings, default_port=DAEMON_METRICS_PORT)
    if not args.no_migrate:
        migrate_waiting(settings.database_url, timeout=settings.startup_timeout)
    # The daemon publishes every fire to the broker (it does not use Redis itself):
    # an unreachable or misspelt broker is one line at start, not a failure per fire.
    retry_at_start(lambda: check_broker(settings.broker_url), timeout=settings.startup_timeout)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    from reconciler.engine.daemon import release_free_heap
    from reconciler.metrics import DAEMON_METRICS, JOB_SERIES, only

    # A scrape that rendered many jobs (the first after a start) freed ~230 MB of strings.
    JOB_SERIES.after_many_renders = release_free_heap
    server = start_metrics_server(port, host, registry=only(DAEMON_METRICS))
    daemon = build_daemon(settings)
    log.info(
        "reconciler starting (jobs %s, metrics %s)",
        settings.jobs_dir,
        f"{host}:{port}" if port else "off",
    )
    try:
        daemon.run(stop)
    finally:
        if server is not None:
            server.close()
    if daemon.failure is not None:
        # The lead given up (its scheduler could not fire): a supervisor restarts it.
        return EXIT_ERROR
    if daemon.superseded:
        # A hung leader that another one replaced: a supervisor restarts it as a standby.
        return SUPERSEDED_EXIT
    return 0


def migrate_waiting(url: str, *, timeout: float) -> None:
    """`db upgrade`, retried with backoff while the database cannot be reached, for at
    most `timeout` seconds (RECONCILER_STARTUP_TIMEOUT: compose starts everything at
    once). Other errors, and the last failure, are raised."""
    from reconciler.startup import retry_at_start
    from reconciler.store.migrate import upgrade_database

    retry_at_start(lambda: upgrade_database(url), timeout=timeout)
