"""`reconcile db upgrade`: bring the database schema to the newest migration."""

from __future__ import annotations

import argparse

from reconciler.commands._common import settings_from

HELP = "database schema: `reconcile db upgrade` applies the Alembic migrations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["upgrade"], help="what to do with the schema")
    parser.add_argument("--revision", default="head", help="target revision (default head)")


def run(args: argparse.Namespace) -> int:
    from reconciler.store.migrate import upgrade_database

    settings = settings_from(args)
    upgrade_database(settings.database_url, args.revision)
    print(f"database at {args.revision}")
    return 0
