"""`reconcile db upgrade`: Alembic, driven from code (no alembic.ini needed)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from reconciler.store.db import create_sync_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe to run concurrently with itself on PostgreSQL
    (Alembic's version table serialises it) and idempotent."""
    # Alembic logs every plugin and step at INFO; a daemon start is not the place.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
