"""`reconcile db upgrade`: Alembic, driven from code (no alembic.ini needed); a database
already at the head, or an empty PostgreSQL database, without it (store.head_schema)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reconciler.store.db import create_sync_engine, ensure_sqlite_folder
from reconciler.store.head_schema import MIGRATIONS_DIR, reach_head

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = ["MIGRATE_LOCK_KEY", "MIGRATIONS_DIR", "alembic_config", "upgrade_database"]


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Held for the migration's transaction, so that replicas starting together (a rolling
# deploy) migrate one after the other: two concurrent upgrades of an empty PostgreSQL
# database both CREATE TABLE alembic_version and the loser dies (measured). The second
# waits, then finds the schema at head and does nothing.
MIGRATE_LOCK_KEY = 0x5265636F6E4D6967  # 'ReconMig'


def upgrade_database(url: str, revision: str = "head", *, by_alembic: bool = False) -> None:
    """Bring the schema to `revision`. Idempotent, and safe to run concurrently with
    itself: on PostgreSQL an advisory lock serialises it; SQLite's write lock does.
    `by_alembic`: run Alembic even where the head needs none of it (tests, and
    recording the head script)."""
    ensure_sqlite_folder(url)
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY}
                )
            if revision == "head" and not by_alembic and reach_head(connection):
                return
            _upgrade_by_alembic(connection, url, revision)
    finally:
        engine.dispose()


def _upgrade_by_alembic(connection: Connection, url: str, revision: str) -> None:
    from alembic import command

    # Alembic logs every plugin and step at INFO; a daemon start is not the place.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
