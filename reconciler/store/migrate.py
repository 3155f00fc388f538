"""`reconcile db upgrade`: Alembic, driven from code (no alembic.ini needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from reconciler.store.db import create_sync_engine, ensure_sqlite_folder

# Inside the package (Alembic's own layout: env.py, script.py.mako, versions/), so that
# a built wheel carries them and every install finds them beside the code.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Held for the migration's transaction, so that replicas starting together (a rolling
# deploy) migrate one after the other: two concurrent upgrades of an empty PostgreSQL
# database both CREATE TABLE alembic_version and the loser dies (measured). The second
# waits, then finds the schema at head and does nothing.
MIGRATE_LOCK_KEY = 0x5265636F6E4D6967  # 'ReconMig'


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Idempotent, and safe to run concurrently with
    itself: on PostgreSQL an advisory lock serialises it; SQLite's write lock does."""
    # Alembic logs every plugin and step at INFO; a daemon start is not the place.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    ensure_sqlite_folder(url)
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY}
                )
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
