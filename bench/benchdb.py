"""Throw-away PostgreSQL databases and RabbitMQ vhosts for the benchmarks: each run
creates its own and removes them afterwards, also when it fails or is stopped.

- `fresh_database()` / `fresh_vhost()`: context managers (created, yielded, removed);
  `create_database()` / `drop_database(name)`, `create_vhost()` / `delete_vhost(name)`
  for a bench that manages the order itself.
- A removal that fails is reported on stderr with the command that finishes it, never
  swallowed (a bench left RabbitMQ vhosts and a database behind, their errors dropped),
  and never raised either: it would hide the bench's own error, and the other removals
  still run.
- Creating the first resource makes SIGTERM (`timeout`, a supervisor) raise SystemExit
  in the main thread, as Ctrl-C raises KeyboardInterrupt, so that the `finally` blocks
  removing them run (the default action ends the process at once). SIGKILL still leaves
  them behind: names start with `bench_`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import sqlalchemy as sa

ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"


def create_database(prefix: str = "bench") -> str:
    """A new empty database; its name. Remove it with `drop_database`."""
    stop_on_sigterm()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return name


def drop_database(name: str) -> bool:
    """Drop it (its connections too); False, reported on stderr, if that failed."""
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return True
    except Exception as error:  # reported, not raised: see the module doc
        report_leftover(
            f"database {name}",
            f"psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE \"{name}\"'",
            error,
        )
        return False
    finally:
        admin.dispose()


@contextmanager
def fresh_database(prefix: str = "bench") -> Iterator[str]:
    """A new empty database, dropped afterwards; its name."""
    name = create_database(prefix)
    try:
        yield name
    finally:
        drop_database(name)


def create_vhost() -> str:
    """A new RabbitMQ vhost the guest user may use; its name (the broker URL:
    f"{AMQP_BASE}/{name}"). Remove it with `delete_vhost`."""
    stop_on_sigterm()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    except BaseException:
        delete_vhost(name)
        raise
    return name


def delete_vhost(name: str) -> bool:
    """Delete it; False, reported on stderr, if that failed."""
    try:
        rabbitmqctl("delete_vhost", name)
        return True
    except RuntimeError as error:  # reported, not raised: see the module doc
        report_leftover(f"vhost {name}", f"rabbitmqctl delete_vhost {name}", error)
        return False


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """A new vhost (`create_vhost`), deleted afterwards; its name."""
    name = create_vhost()
    try:
        yield name
    finally:
        delete_vhost(name)


def rabbitmqctl(*args: str) -> None:
    """rabbitmqctl, retried: it fails now and then on a loaded machine (exit 64 when
    concurrent CLI invocations collide; a CLI node that did not start). RuntimeError
    after the last attempt."""
    for attempt in range(5):
        result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
        if result.returncode == 0:
            return
        time.sleep(0.5 + attempt)
    detail = result.stderr.strip() or f"exit {result.returncode}"
    raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {detail}")


def report_leftover(what: str, fix: str, error: BaseException) -> None:
    print(f"bench: {what} NOT removed ({error}); remove it: {fix}", file=sys.stderr, flush=True)


def stop_on_sigterm() -> None:
    """SIGTERM raises SystemExit(143) in the main thread (cleanup runs), unless the
    bench handles the signal itself. Only from the main thread (signal's rule)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
