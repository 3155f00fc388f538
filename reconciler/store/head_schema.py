"""The head migration's schema without Alembic, where the outcome is certain.

Alembic costs a start CPU even when it has nothing to decide (its import, with Mako's
and Pygments', then loading the revisions and compiling their DDL): 0.165 s to migrate
an empty database, 0.106 s to find one at the head (measured in a process that had
imported what `reconcile apply` imports before it migrates). Two cases need none of
it: a database already at the one head (Alembic would do nothing), and a PostgreSQL
database without Alembic's version table (empty, or holding only tables that are not
ours: Alembic would run every revision), which gets `migrations/head.sql`: the
statements Alembic's upgrade executes there, recorded (`record_head_script`), sent as
one script (0.013 s of CPU here). tests/unit/store/test_head_schema.py holds the dumps
(pg_dump, schema and rows) of an Alembic-migrated and a scripted database equal.
Anything else (a revision behind, branches, SQLite's first migration, a script
recorded for another head) is Alembic's. `head_revision` is also the no-op check's
(store.noop_check): this module imports neither SQLAlchemy nor Alembic.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
HEAD_SCRIPT = MIGRATIONS_DIR / "head.sql"
# The script's first line names the head it was recorded at.
_HEADER = "-- Recorded from Alembic's upgrade of an empty PostgreSQL database to {head}.\n"
_REVISION = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)
_DOWN = re.compile(r'^down_revision = (?:"([^"]+)"|None)$', re.MULTILINE)


def head_revision() -> str | None:
    """The one head of the migrations, read from their files (a test keeps it equal to
    Alembic's); None when they do not form one plain chain."""
    revisions, downs = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        downs.add(down[0])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def reach_head(connection: Connection) -> bool:
    """True when the database is at the head migration: it was already, or it was an
    empty PostgreSQL database and the head script made it so, in the caller's
    transaction (which holds the migration lock: store.migrate). False: Alembic must
    run; nothing was written."""
    head = head_revision()
    if head is None:
        return False
    if _has_version_table(connection):
        return _versions(connection) == [head]
    if connection.dialect.name != "postgresql":
        return False
    script = read_head_script(head)
    if script is None:
        return False
    # No parameters: psycopg sends the whole script at once (the simple query protocol).
    connection.exec_driver_sql(script)
    return True


def behind_head(connection: Connection) -> str | None:
    """Why a reader cannot trust this database's schema to hold what this code reads (a
    migration of this release not run yet: a column it selects may be missing), or None
    (at the head, or not a chain of ours to judge)."""
    head = head_revision()
    if head is None or not _has_version_table(connection):
        return None
    versions = _versions(connection)
    if versions == [head]:
        return None
    at = ", ".join(versions) or "no migration"
    return f"the database schema is at {at}, this release reads {head}: run `reconcile db upgrade`"


def read_head_script(head: str, path: Path = HEAD_SCRIPT) -> str | None:
    """The head script, if it was recorded at `head` (else None: a migration was added
    since, and Alembic runs until the script is recorded again)."""
    try:
        script = path.read_text(encoding="utf-8")
    except OSError:
        return None
    return script if script.startswith(_HEADER.format(head=head)) else None


def _versions(connection: Connection) -> list[str]:
    """The revisions Alembic's version table records (one, unless branches)."""
    return [row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]


def _has_version_table(connection: Connection) -> bool:
    """Alembic's own question (a table of that name on the search path), asked without
    SQLAlchemy's inspector."""
    if connection.dialect.name == "postgresql":
        found = connection.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'alembic_version' "
            "AND relkind IN ('r', 'p', 'f', 'v', 'm') AND pg_table_is_visible(oid) "
            "AND relnamespace <> 'pg_catalog'::regnamespace)"
        )
        return bool(found.scalar())
    found = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = 'alembic_version'"
    )
    return found.first() is not None


def record_head_script(url: str) -> str:
    """What Alembic's upgrade to head executes on the empty PostgreSQL database at
    `url` (which it migrates), less its reads: the head script's text. Run
    `python -m reconciler.store.head_schema URL` (an empty database) after adding a
    migration."""
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    from reconciler.store.migrate import upgrade_database

    head = head_revision()
    assert head is not None, "the migrations do not form one chain"
    statements: list[str] = []

    def record(_c: object, _cur: object, statement: str, parameters: object, *_: object) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            assert not parameters, f"a statement with parameters: {statement}"
            statements.append(statement.strip())

    sa.event.listen(Engine, "before_cursor_execute", record)
    try:
        upgrade_database(url, by_alembic=True)
    finally:
        sa.event.remove(Engine, "before_cursor_execute", record)
    return _HEADER.format(head=head) + "".join(f"{statement};\n" for statement in statements)


if __name__ == "__main__":
    HEAD_SCRIPT.write_text(record_head_script(sys.argv[1]), encoding="utf-8")
