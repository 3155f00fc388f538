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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-migrate", action="store_true", help="do not run `db upgrade` at start"
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import settings_from
    from reconciler.commands._common import require_jobs_dir
    from reconciler.observability import start_metrics_server
    from reconciler.wiring import build_daemon

    settings = settings_from(args)
    logging.getLogger("reconciler").setLevel(settings.log_level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    require_jobs_dir(settings)
    if not args.no_migrate:
        migrate_exclusively(settings.database_url)
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
    return 0


# Not the leader lock's key: a standby must be able to migrate while another process leads.
MIGRATE_LOCK_KEY = 0x5265636F6E4D6967  # 'ReconMig'


def migrate_exclusively(database_url: str) -> None:
    """`db upgrade`, one process at a time. Replicas of a rolling deploy start together:
    two concurrent upgrades of an empty PostgreSQL database both CREATE TABLE
    alembic_version, and the loser died with a UniqueViolation (measured: one of two
    daemons started at once). A session advisory lock on its own connection serialises
    them; the second finds the schema at head and does nothing. SQLite: one machine,
    and its own write lock already serialises the transaction."""
    from reconciler.store.db import create_sync_engine, is_sqlite
    from reconciler.store.migrate import upgrade_database

    if is_sqlite(database_url):
        upgrade_database(database_url)
        return
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = create_sync_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
            try:
                upgrade_database(database_url)
            finally:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY}
                )
    finally:
        engine.dispose()
