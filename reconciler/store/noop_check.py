"""What a no-op `reconcile plan` or `reconcile apply` reads of the database, without
SQLAlchemy or psycopg: the file records, the inventory joined with the scheduler rows
and their records, the foreign rows, the quarantined files, in ONE statement taken
under the apply lock (one snapshot, taken after the lock is held, as the full path
reads them). PostgreSQL only, through store.libpq; the checks themselves are in
commands/_noop.py. A no-op apply records its pass (`Snapshot.record_no_change`) in the
same transaction. Every failure is None: the command then takes its full path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from reconciler.core.vocabulary import COUNT_COLUMNS, ReconcileOutcome, Trigger
from reconciler.spec.context import installed_code
from reconciler.store.head_schema import head_revision
from reconciler.store.libpq import Connection, LibpqUnavailable

# store.apply_lock.APPLY_LOCK_KEY (a test keeps them equal).
APPLY_LOCK_KEY = 0x7265636F6E63
_STORE = Path(__file__).resolve().parent
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
# All of it in one statement: under READ COMMITTED (asked for by _BEGIN, whatever the
# database's default_transaction_isolation) its snapshot is taken when it starts, after
# the lock is held (a REPEATABLE READ transaction would take its snapshot at its first
# statement, the lock's, before a concurrent apply it waited for had committed).
_STATE = f"SELECT ({_RECORDS}), ({_JOBS}), ({_FOREIGN}), (SELECT count(*) FROM quarantined_files)"
_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
_COUNTS = tuple(COUNT_COLUMNS.values())  # the count columns of reconcile_runs
_HEX = re.compile(r"[0-9a-f]{40,64}")  # a commit id, as git prints it
# core.plan.plan_hash of no change: the digest of an empty list, twice.
EMPTY_PLAN_HASH = hashlib.sha256(b"[]").hexdigest()[:32] * 2


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
    quarantined: int  # rows in quarantined_files


class Snapshot:
    """The state read, and the transaction (under the apply lock) it was read in."""

    def __init__(self, connection: Connection, state: StoredState) -> None:
        self._connection = connection
        self.state = state

    def record_no_change(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        duration: float,
        revision: str | None,
        dirty: bool,
    ) -> bool:
        """Record the pass as the full path records a `reconcile apply` that found no
        change (engine.reconcile._record: one reconcile_runs row), and commit. False
        (nothing recorded) when a value cannot be written as a plain literal or the
        database refuses."""
        if revision is not None and not _HEX.fullmatch(revision):
            return False
        values = ", ".join(
            [
                f"'{Trigger.CLI}'",
                "NULL",  # instance: a CLI pass has none
                f"'{started_at.isoformat()}'",
                f"'{finished_at.isoformat()}'",
                repr(float(duration)),
                f"'{ReconcileOutcome.NO_CHANGES}'",
                "NULL" if revision is None else f"'{revision}'",
                "true" if dirty else "false",
                f"'{EMPTY_PLAN_HASH}'",
                *["0"] * len(_COUNTS),
                "0",  # quarantined files: none, or the check declined
                str(len(self.state.foreign)),
                "'[]'",  # errors
            ]
        )
        try:
            self._connection.execute(
                "INSERT INTO reconcile_runs (trigger, instance, started_at, finished_at, "
                "duration_seconds, outcome, revision, revision_dirty, plan_hash, "
                f"{', '.join(_COUNTS)}, quarantined_files, foreign_rows, errors) VALUES ({values})"
            )
            self._connection.execute("COMMIT")
        except LibpqUnavailable:
            return False
        return True


def read_stored_state(url: str) -> StoredState | None:
    """The state, or None: not a URL this vouches for, no libpq, no connection, a schema
    other than the head migration, any query failing."""
    with stored_state(url) as snapshot:
        return None if snapshot is None else snapshot.state


@contextmanager
def stored_state(url: str, *, write: bool = False) -> Iterator[Snapshot | None]:
    """`read_stored_state`'s reading, in a transaction held (with the apply lock) until
    the block ends: rolled back then, unless the block committed (`record_no_change`).
    `write`: a read-write transaction."""
    head = head_revision()
    if head is None or not _URL.fullmatch(url):
        yield None
        return
    try:
        connection = Connection(url)
    except LibpqUnavailable:
        yield None
        return
    try:
        yield _read(connection, head, write=write)
    finally:
        connection.close()  # a transaction still open is rolled back


def _read(connection: Connection, head: str, *, write: bool) -> Snapshot | None:
    try:
        connection.execute(_BEGIN if write else f"{_BEGIN} READ ONLY")
        connection.query(f"SELECT pg_advisory_xact_lock({APPLY_LOCK_KEY})")
        if connection.query("SELECT to_regclass('alembic_version') IS NOT NULL") != [("t",)]:
            return None
        if connection.query("SELECT version_num FROM alembic_version") != [(head,)]:
            return None
        rows = connection.query(_STATE.format(code=row_code()))
        if len(rows) != 1 or None in rows[0]:
            return None
        records, jobs, foreign = (orjson.loads(value or "") for value in rows[0][:3])
        quarantined = int(rows[0][3] or "")
    except (LibpqUnavailable, orjson.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None
    state = StoredState(
        records={path: (digest, context, outcome) for path, digest, context, outcome in records},
        jobs={row[0]: StoredJob(*row) for row in jobs},
        foreign=foreign,
        quarantined=quarantined,
    )
    return Snapshot(connection, state)


def row_code() -> str:
    """store.scheduler_rows.row_code, without importing it (a test keeps them equal)."""
    digest = hashlib.sha256(installed_code().encode())
    for name in ("job_state.py", "scheduler_rows.py"):
        digest.update((_STORE / name).read_bytes())
    return digest.hexdigest()
