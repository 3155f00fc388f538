"""What a no-op `reconcile plan` reads of the database, without SQLAlchemy or psycopg:
the file records, the inventory joined with the scheduler rows and their records,
the foreign rows, in one read-only snapshot under the apply lock (as the full path
reads them). PostgreSQL only, through store.libpq; the checks themselves are in
commands/_noop.py. Every failure is None: the command then takes its full path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from reconciler.spec.context import installed_code
from reconciler.store.libpq import Connection, LibpqUnavailable

# store.apply_lock.APPLY_LOCK_KEY (a test keeps them equal).
APPLY_LOCK_KEY = 0x7265636F6E63
_STORE = Path(__file__).resolve().parent
_MIGRATIONS = _STORE.parent / "migrations" / "versions"
# The plain URLs this reading vouches for: libpq reads them exactly as SQLAlchemy hands
# them to psycopg. Anything else (query options, several hosts, a driver name, escapes)
# is left to the full path.
_URL = re.compile(
    r"postgresql://(?:[A-Za-z0-9._-]+(?::[A-Za-z0-9._-]*)?@)?"
    r"[A-Za-z0-9._-]+(?::[0-9]{1,5})?/[A-Za-z0-9._-]+"
)

_RECORDS = (
    "SELECT coalesce(json_agg(json_build_array(path, digest, context, outcome)), '[]') "
    "FROM job_files"
)
# Per inventory row: its columns the plan compares, its essence, and its scheduler row:
# present, paused (NULL next_run_time), and holding exactly the bytes recorded when we
# wrote it for this spec hash and revision under this code (the digest PostgreSQL
# computes of the stored state; the state itself does not travel).
_JOBS = """
SELECT coalesce(json_agg(json_build_array(
    j.name, j.spec_hash, j.status, j.source_file, j.spec,
    a.id IS NOT NULL, a.next_run_time IS NULL,
    coalesce(w.state_sha256 = encode(sha256(a.job_state), 'hex')
             AND w.code = '{code}' AND w.spec_hash = j.spec_hash
             AND w.revision IS NOT DISTINCT FROM j.revision, false)
)), '[]')
FROM scheduled_jobs AS j
LEFT JOIN apscheduler_jobs AS a ON a.id = j.name
LEFT JOIN written_scheduler_rows AS w ON w.id = j.name
"""
_FOREIGN = """
SELECT coalesce(json_agg(a.id), '[]') FROM apscheduler_jobs AS a
WHERE NOT EXISTS (SELECT 1 FROM scheduled_jobs AS j WHERE j.name = a.id)
"""


@dataclass(frozen=True, slots=True)
class StoredJob:
    name: str
    spec_hash: str
    status: str
    source_file: str
    essence: dict[str, Any]
    has_row: bool
    row_paused: bool
    row_as_written: bool  # the row's bytes are the ones recorded for this inventory row


@dataclass(frozen=True, slots=True)
class StoredState:
    records: dict[str, tuple[str, str, dict[str, Any]]]  # path -> (digest, context, outcome)
    jobs: dict[str, StoredJob]
    foreign: list[str]  # scheduler row ids with no inventory row, unsorted


def read_stored_state(url: str) -> StoredState | None:
    """The state, or None: not a URL this vouches for, no libpq, no connection, a schema
    other than the head migration, any query failing."""
    head = head_revision()
    if head is None or not _URL.fullmatch(url):
        return None
    try:
        connection = Connection(url)
    except LibpqUnavailable:
        return None
    try:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        connection.query(f"SELECT pg_advisory_xact_lock({APPLY_LOCK_KEY})")
        if connection.query("SELECT to_regclass('alembic_version') IS NOT NULL") != [("t",)]:
            return None
        if connection.query("SELECT version_num FROM alembic_version") != [(head,)]:
            return None
        records = _one(connection, _RECORDS)
        jobs = _one(connection, _JOBS.format(code=row_code()))
        foreign = _one(connection, _FOREIGN)
        connection.execute("COMMIT")
    except (LibpqUnavailable, orjson.JSONDecodeError, UnicodeDecodeError):
        return None
    finally:
        connection.close()
    return StoredState(
        records={path: (digest, context, outcome) for path, digest, context, outcome in records},
        jobs={row[0]: StoredJob(*row) for row in jobs},
        foreign=foreign,
    )


def _one(connection: Connection, sql: str) -> Any:
    rows = connection.query(sql)
    if len(rows) != 1 or rows[0][0] is None:
        raise LibpqUnavailable("expected one value")
    return orjson.loads(rows[0][0])


def row_code() -> str:
    """store.scheduler_rows.row_code, without importing it (a test keeps them equal)."""
    digest = hashlib.sha256(installed_code().encode())
    for name in ("job_state.py", "scheduler_rows.py"):
        digest.update((_STORE / name).read_bytes())
    return digest.hexdigest()


_REVISION = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)
_DOWN = re.compile(r'^down_revision = (?:"([^"]+)"|None)$', re.MULTILINE)


def head_revision() -> str | None:
    """The one head of the migrations, read from their files (a test keeps it equal to
    Alembic's); None when they do not form one plain chain."""
    revisions, downs = set(), set()
    for path in _MIGRATIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        downs.add(down[0])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None
