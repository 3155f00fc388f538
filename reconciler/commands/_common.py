"""Pieces shared by the commands that talk to the database."""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.errors import ConfigError
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine


def open_engine(settings: Settings) -> Engine:
    return create_sync_engine(settings.database_url)


def schema_ready(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("scheduled_jobs")


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
