"""`reconcile run`: the reconciler daemon (watch, resync, lead, fire). Runs until SIGTERM
or Ctrl-C, then stops cleanly: in-flight fires are recorded and published, the
leadership is released so a standby takes over at once."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

HELP = "the daemon: watch jobs.d, reconcile, lead, fire into Celery (until SIGTERM)"
log = logging.getLogger("reconciler.run")
SUPERSEDED_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-migrate", action="store_true", help="do not run `db upgrade` at start"
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import settings_from
    from reconciler.commands._common import require_jobs_dir
    from reconciler.observability import start_metrics_server
    from reconciler.store.migrate import upgrade_database
    from reconciler.wiring import build_daemon

    settings = settings_from(args)
    logging.getLogger("reconciler").setLevel(settings.log_level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    require_jobs_dir(settings)
    if not args.no_migrate:
        upgrade_database(settings.database_url)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = start_metrics_server(settings.metrics_port)
    daemon = build_daemon(settings)
    log.info(
        "reconciler starting (jobs %s, metrics port %s)",
        settings.jobs_dir,
        settings.metrics_port or "off",
    )
    try:
        daemon.run(stop)
    finally:
        if server is not None:
            server.close()
    if daemon.superseded:
        # A hung leader that another one replaced: a supervisor restarts it as a standby.
        return SUPERSEDED_EXIT
    return 0
