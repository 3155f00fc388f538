"""Alembic environment: runs our migrations on the connection `reconcile db upgrade` gives."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from reconciler.store.db import create_sync_engine
from reconciler.store.tables import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_sync_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as fresh:
        _run(fresh)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `reconcile db upgrade`")
run_migrations_online()
