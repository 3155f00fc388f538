"""Pieces shared by the commands that talk to the database."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from reconciler.errors import ConfigError

if TYPE_CHECKING:  # imported when used: `reconcile validate` must not pay for SQLAlchemy
    from sqlalchemy.engine import Engine

    from reconciler.settings import Settings


def open_engine(settings: Settings) -> Engine:
    from reconciler.store.db import create_sync_engine

    return create_sync_engine(settings.database_url)


def schema_ready(engine: Engine) -> bool:
    import sqlalchemy as sa

    return bool(sa.inspect(engine).has_table("scheduled_jobs"))


def require_jobs_dir(settings: Settings) -> None:
    if not settings.jobs_dir.is_dir():
        raise ConfigError(
            f"jobs folder {settings.jobs_dir} does not exist "
            "(set --jobs-dir or RECONCILER_JOBS_DIR)"
        )


def add_format(parser: argparse.ArgumentParser, *choices: str) -> None:
    parser.add_argument(
        "--format", choices=choices, default=choices[0], help="output format (default %(default)s)"
    )


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
