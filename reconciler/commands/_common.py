"""Pieces shared by the commands: exit codes, settings from the common flags, the
database connections. `reconciler.cli` imports the commands (each when invoked), never
the other way round."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import ConfigError

if TYPE_CHECKING:  # imported when used: `reconcile validate` must not pay for SQLAlchemy
    from sqlalchemy.engine import Connection, Engine

    from reconciler.settings import Settings

# DESIGN.md: 0 success / no changes, 1 error or invalid input, 2 the plan has changes,
# 3 refused by a safety guard.
EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_REFUSED = 0, 1, 2, 3


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the common flags on top."""
    from reconciler.settings import load_settings

    try:
        return load_settings(
            jobs_dir=getattr(args, "jobs_dir", None),
            database_url=getattr(args, "database_url", None),
        )
    except ValueError as error:
        raise ConfigError(f"invalid setting: {error}") from None


def leave_to_exit(value: object) -> None:
    """Never free `value` one object at a time: the process's exit returns its memory at
    once. For a one-shot command's last big value (a cold apply's plan and what it
    holds: 10,000 changes, their targets, specs and essences, ~0.05 s of CPU to free
    after the output is written). `value` is put in a reference cycle of its own, so
    neither the end of its holders nor the interpreter's teardown of the modules frees
    it; cli.main freezes every object before the exit (gc.freeze), and frozen cycles
    are never collected. Where nothing is frozen (main called with arguments: tests),
    the cycle is collected as any other."""
    cycle: list[object] = [value]
    cycle.append(cycle)


def open_engine(settings: Settings) -> Engine:
    from reconciler.store.db import create_sync_engine

    return create_sync_engine(settings.database_url)


def open_read_only_engine(settings: Settings) -> Engine:
    """An engine that cannot write: a dry run must leave the database byte for byte as
    it was. PostgreSQL: read-only transactions. SQLite: the file opened read-only, and
    no file at all (an empty in-memory database) when there is none yet: planning
    against nothing must not create one."""
    import sqlalchemy as sa

    from reconciler.store.db import create_sync_engine, is_sqlite

    url = settings.database_url
    if not is_sqlite(url):
        engine = create_sync_engine(url)
        return engine.execution_options(postgresql_readonly=True)
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        return sa.create_engine("sqlite+pysqlite://")
    path = Path(database).resolve()
    if not path.exists():
        return sa.create_engine("sqlite+pysqlite://")
    # Not create_sync_engine: its WAL pragma is a write; busy_timeout waits for a writer.
    return sa.create_engine(
        f"sqlite+pysqlite:///file:{path}?mode=ro&uri=true",
        connect_args={"timeout": 10},
    )


def schema_ready(engine: Engine) -> bool:
    from reconciler.store.db import has_schema

    return has_schema(engine)


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


def colour_wanted() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org): the one rule of every
    command's text output, the plan's as the read commands'."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def read_database_url(args: argparse.Namespace) -> str:
    """The database of a read command: the --database-url flag or the environment, read
    without the settings model (pydantic-settings), which a read command does not need."""
    from reconciler.database_url import database_url_from_env

    return database_url_from_env(os.environ, override=getattr(args, "database_url", None))


@contextmanager
def connect(args: argparse.Namespace) -> Iterator[Connection]:
    """A connection to the configured database, for the read commands. Raises ConfigError
    when the database has no schema yet."""
    from reconciler.store.db import create_sync_engine

    engine = create_sync_engine(read_database_url(args))
    try:
        if not schema_ready(engine):
            raise ConfigError("the database has no schema yet: run `reconcile db upgrade`")
        from reconciler.store.head_schema import behind_head

        with engine.connect() as connection:
            behind = behind_head(connection)
            if behind is not None:
                raise ConfigError(behind)
            yield connection
    finally:
        engine.dispose()
