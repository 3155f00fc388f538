"""The run ledger (`job_runs`): every statement that reads or writes it, for both sides.

The dispatcher's side (records fires, marks them published, retries, reaps, expires):
set-based statements only. Every function takes an open SQLAlchemy Connection inside
the caller's transaction and runs a constant number of statements whatever the batch
size (one executemany insert, one update): 10,000 fires cost a few round trips, not
10,000.

The worker's side (claims a run, renews its lease, writes its outcome): single-row
compare-and-set statements; the claim protocol that uses them is `worker.claims`.
The final writes (`FINAL_WRITES`) are prepared statements executed in batches by the
worker's LedgerWriter.

Times are stored in UTC. SQLite hands them back naive: `core.moments.as_utc` restores
the zone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from reconciler.core.moments import as_utc
from reconciler.core.vocabulary import (
    FINAL_RUN_STATUSES,
    UNFINISHED_RUN_STATUSES,
    RunReason,
    RunStatus,
    TaskOutcome,
)
from reconciler.store.tables import job_runs, scheduled_jobs


@dataclass(frozen=True, slots=True)
class ActiveRun:
    id: str
    job: str
    slot: datetime


def insert_rows(connection: Connection, rows: Sequence[Mapping[str, object]]) -> set[str]:
    """Insert rows, skipping any whose slot (or id) is already in the ledger.

    Returns the ids actually inserted: a missing id is a slot recorded before (a
    duplicate fire). One statement on both databases.
    """
    if not rows:
        return set()
    if connection.dialect.name == "postgresql":
        return _insert_rows_json(connection, rows)
    statement = sqlite.insert(job_runs).on_conflict_do_nothing().returning(job_runs.c.id)
    return set(connection.execute(statement, list(rows)).scalars())


# PostgreSQL: the whole batch as ONE json parameter, expanded by json_to_recordset. A
# VALUES list of 500 rows has 7,500 placeholders that the driver re-parses on every
# batch; one array per column (unnest) parses fast but psycopg dumps arrays element by
# element in Python, most of the recorder's CPU in a burst of 10,000 fires. orjson
# writes the rows (datetimes as RFC 3339) in C.
_ROW_COLUMNS = (
    ("id", "varchar"),
    ("job_name", "varchar"),
    ("scheduled_time", "timestamptz"),
    ("status", "varchar"),
    ("reason", "text"),
    ("task", "varchar"),
    ("queue", "varchar"),
    ("idempotency_key", "varchar"),
    ("revision", "varchar"),
    ("fired_at", "timestamptz"),
    ("lateness_seconds", "float8"),
    ("publish_attempts", "int4"),
    ("next_attempt_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_COLUMN_NAMES = ", ".join(name for name, _ in _ROW_COLUMNS)
_INSERT_JSON = sa.text(
    f"INSERT INTO job_runs ({_COLUMN_NAMES}) SELECT {_COLUMN_NAMES} "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r("
    + ", ".join(f"{name} {kind}" for name, kind in _ROW_COLUMNS)
    + ") ON CONFLICT DO NOTHING RETURNING id"
)


def _insert_rows_json(connection: Connection, rows: Sequence[Mapping[str, object]]) -> set[str]:
    rows_only = [{name: row[name] for name, _ in _ROW_COLUMNS} for row in rows]
    document = orjson.dumps(rows_only, option=orjson.OPT_NAIVE_UTC)  # naive means UTC
    return set(connection.execute(_INSERT_JSON, {"rows": document.decode()}).scalars())


def _member_of(
    connection: Connection, column: sa.ColumnElement[str], values: Collection[str]
) -> sa.ColumnElement[bool]:
    """`column IN values`: one array parameter on PostgreSQL (see _INSERT_JSON)."""
    if connection.dialect.name == "postgresql":
        return column == sa.any_(
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.String))
        )
    return column.in_(sorted(values))


def add_duplicates(connection: Connection, ids: Iterable[str], *, now: datetime) -> None:
    """Count one more duplicate fire on each row (an id listed twice counts twice)."""
    counts = Counter(ids)
    if not counts:
        return
    statement = (
        job_runs.update()
        .where(job_runs.c.id == sa.bindparam("fire_id"))
        .values(duplicates=job_runs.c.duplicates + sa.bindparam("n"), updated_at=now)
    )
    connection.execute(statement, [{"fire_id": key, "n": n} for key, n in counts.items()])


def find_active_runs(
    connection: Connection, jobs: Collection[str], *, since: datetime, now: datetime
) -> dict[str, list[ActiveRun]]:
    """Runs of `jobs` that may still be running: an active status, slot at or after
    `since`, and, when `started`, a claim lease not yet passed (a worker that stopped
    renewing it is dead or cut off: its run no longer counts, the reaper closes it)."""
    if not jobs:
        return {}
    query = sa.select(job_runs.c.id, job_runs.c.job_name, job_runs.c.scheduled_time).where(
        *_active(connection, jobs, since=since, now=now)
    )
    active: dict[str, list[ActiveRun]] = defaultdict(list)
    for fire_id, job, slot in connection.execute(query):
        active[job].append(ActiveRun(fire_id, job, as_utc(slot)))
    return active


def count_active_runs(
    connection: Connection, jobs: Collection[str], *, since: datetime, now: datetime
) -> dict[str, int]:
    """How many runs `find_active_runs` would give per job (jobs with none left out):
    one row per job, however many runs pile up."""
    if not jobs:
        return {}
    query = (
        sa.select(job_runs.c.job_name, sa.func.count())
        .where(*_active(connection, jobs, since=since, now=now))
        .group_by(job_runs.c.job_name)
    )
    return {job: count for job, count in connection.execute(query)}


def _active(
    connection: Connection, jobs: Collection[str], *, since: datetime, now: datetime
) -> list[sa.ColumnElement[bool]]:
    dead = sa.and_(
        job_runs.c.status == RunStatus.STARTED,
        job_runs.c.lease_until.is_not(None),
        job_runs.c.lease_until < now,
    )
    return [
        _member_of(connection, job_runs.c.job_name, jobs),
        job_runs.c.status.in_(UNFINISHED_RUN_STATUSES),
        job_runs.c.scheduled_time >= since,
        sa.not_(dead),
    ]


def mark_published(connection: Connection, ids: Collection[str], *, now: datetime) -> None:
    """Confirmed by the broker. A worker may already have moved the row on (started,
    succeeded): its status is then left alone. A row marked published already keeps its
    published_at: a leader frozen between the broker's confirm and its mark marks at
    its wake the rows the next leader's retrier published meanwhile, and the first
    publish is the one that counts (the worker runs the slot once)."""
    if not ids:
        return
    published_at = job_runs.c.published_at
    connection.execute(
        job_runs.update()
        .where(_member_of(connection, job_runs.c.id, ids))
        .values(
            status=sa.case(
                (job_runs.c.status == RunStatus.SCHEDULED, RunStatus.PUBLISHED.value),
                else_=job_runs.c.status,
            ),
            published_at=sa.case(
                (published_at.is_(None), sa.bindparam(None, now, type_=published_at.type)),
                else_=published_at,
            ),
            publish_attempts=job_runs.c.publish_attempts + 1,
            next_attempt_at=None,
            updated_at=now,
        )
    )


def mark_unpublished(
    connection: Connection, retry_at: Mapping[str, datetime], *, now: datetime
) -> None:
    """A publish attempt failed: count it, and set when the retrier tries again."""
    if not retry_at:
        return
    statement = (
        job_runs.update()
        .where(job_runs.c.id == sa.bindparam("fire_id"), job_runs.c.status == RunStatus.SCHEDULED)
        .values(
            publish_attempts=job_runs.c.publish_attempts + 1,
            next_attempt_at=sa.bindparam("retry_at"),
            updated_at=now,
        )
    )
    connection.execute(
        statement, [{"fire_id": key, "retry_at": at} for key, at in retry_at.items()]
    )


# A published message past its expiry is dropped by the broker (RabbitMQ honours the
# per-message expiration): no worker will ever start it. This grace covers clock skew.
EXPIRED_IN_BROKER_GRACE = timedelta(seconds=30)


def expire_unpublished(connection: Connection, *, now: datetime) -> list[str]:
    """Rows never published whose expiry passed, and published rows that no worker
    started before the broker dropped them, become 'expired'. Returns their jobs."""
    never_published = sa.and_(
        job_runs.c.status == RunStatus.SCHEDULED, job_runs.c.expires_at <= now
    )
    dropped = sa.and_(
        job_runs.c.status == RunStatus.PUBLISHED,
        job_runs.c.expires_at <= now - EXPIRED_IN_BROKER_GRACE,
    )
    statement = (
        job_runs.update()
        .where(job_runs.c.expires_at.is_not(None), sa.or_(never_published, dropped))
        .values(
            status=RunStatus.EXPIRED,
            reason=sa.case(
                (job_runs.c.status == RunStatus.SCHEDULED, RunReason.NOT_PUBLISHED.value),
                else_="expired in the broker before a worker started it",
            ),
            updated_at=now,
        )
        .returning(job_runs.c.job_name)
    )
    return list(connection.execute(statement).scalars())


def make_unpublished_due(connection: Connection, *, now: datetime) -> None:
    """Every row waiting to be re-published is due now (the broker came back)."""
    connection.execute(
        job_runs.update()
        .where(job_runs.c.status == RunStatus.SCHEDULED, job_runs.c.next_attempt_at > now)
        .values(next_attempt_at=now, updated_at=now)
    )


def due_unpublished(
    connection: Connection, *, now: datetime, limit: int, exclude: Collection[str]
) -> list[sa.Row[*tuple[Any, ...]]]:
    """Rows still 'scheduled' whose next attempt is due, oldest first, minus `exclude`
    (fires this process is publishing right now): id, job_name, scheduled_time,
    idempotency_key, revision, publish_attempts, fired_at."""
    query = (
        sa.select(
            job_runs.c.id,
            job_runs.c.job_name,
            job_runs.c.scheduled_time,
            job_runs.c.idempotency_key,
            job_runs.c.revision,
            job_runs.c.publish_attempts,
            job_runs.c.fired_at,
        )
        .where(
            job_runs.c.status == RunStatus.SCHEDULED,
            sa.or_(job_runs.c.next_attempt_at.is_(None), job_runs.c.next_attempt_at <= now),
        )
        .order_by(job_runs.c.scheduled_time)
        .limit(limit + len(exclude))
    )
    rows = [row for row in connection.execute(query) if row.id not in exclude]
    return rows[:limit]


def count_unpublished(connection: Connection) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(job_runs)
        .where(job_runs.c.status == RunStatus.SCHEDULED)
    )
    return int(connection.execute(query).scalar_one())


def set_status(
    connection: Connection, ids: Collection[str], *, status: str, reason: str, now: datetime
) -> None:
    """Close unpublished rows for good (e.g. their job is no longer managed)."""
    if ids:
        connection.execute(
            job_runs.update()
            .where(job_runs.c.id.in_(sorted(ids)), job_runs.c.status == RunStatus.SCHEDULED)
            .values(status=status, reason=reason, updated_at=now)
        )


def reap_lost(connection: Connection, *, now: datetime, grace: timedelta) -> list[str]:
    """`started` runs whose claim lease passed more than `grace` ago become `failed`
    with RunReason.LOST (provisionally: see core.vocabulary). Returns their jobs."""
    statement = (
        job_runs.update()
        .where(
            job_runs.c.status == RunStatus.STARTED,
            job_runs.c.lease_until.is_not(None),
            job_runs.c.lease_until < now - grace,
        )
        .values(status=RunStatus.FAILED, reason=RunReason.LOST, finished_at=now, updated_at=now)
        .returning(job_runs.c.job_name)
    )
    return list(connection.execute(statement).scalars())


def read_finished_runs(connection: Connection, *, after: datetime) -> list[sa.Row[Any]]:
    """Whole rows of the runs finished after `after`, oldest first."""
    query = (
        sa.select(job_runs).where(job_runs.c.finished_at > after).order_by(job_runs.c.finished_at)
    )
    return list(connection.execute(query).all())


@dataclass(frozen=True, slots=True)
class RewindAnchor:
    """Where a job's accounted slots end, for the rewind of lost slots (see
    jobstore.OwnedJobStore.rewind_lost_slots): every slot of the job's current spec up
    to `since` is in the ledger or was never the current spec's. `next_run_time` is the
    scheduler row's column as read (the rewind's compare-and-set)."""

    since: datetime
    next_run_time: float


def read_rewind_anchors(
    connection: Connection, scheduler_jobs: sa.Table
) -> dict[str, RewindAnchor]:
    """{job: anchor} for the owned jobs with a next_run_time (not paused, not done).

    The anchor is the LATER of the job's newest ledger slot and its last change
    (`scheduled_jobs.updated_at`: the `now` an apply computed its next_run_time from, for
    an add, a new schedule, a resume, a rename). A job that never fired is anchored at
    its last change, so its first slot is accounted for like any other; the slots before
    a change are never the current spec's to run (an apply never causes an extra run)."""
    newest = (
        sa.select(sa.func.max(job_runs.c.scheduled_time))
        .where(job_runs.c.job_name == scheduled_jobs.c.name)
        .scalar_subquery()
    )
    query = (
        sa.select(
            scheduled_jobs.c.name,
            scheduled_jobs.c.updated_at,
            newest,
            scheduler_jobs.c.next_run_time,
        )
        .join(scheduler_jobs, scheduler_jobs.c.id == scheduled_jobs.c.name)
        .where(scheduler_jobs.c.next_run_time.is_not(None))
    )
    anchors: dict[str, RewindAnchor] = {}
    for name, changed, slot, stored in connection.execute(query):
        since = as_utc(changed) if slot is None else max(as_utc(changed), as_utc(slot))
        anchors[name] = RewindAnchor(since, stored)
    return anchors


# --- the worker's side: claims, leases and final writes ------------------------------

# Built once: constructing a statement per call costs more than executing it.
_P = sa.bindparam
_CLAIM_READ = sa.select(
    job_runs.c.status,
    job_runs.c.attempt,
    job_runs.c.lease_until,
    job_runs.c.reason,
    job_runs.c.retries,
).where(job_runs.c.id == _P("p_run_id"))
_CLAIM_FRESH = (
    sa.update(job_runs)
    .where(
        job_runs.c.id == _P("p_run_id"),
        *(job_runs.c.status != status for status in (*FINAL_RUN_STATUSES, RunStatus.STARTED)),
    )
    .values(
        status=RunStatus.STARTED,
        reason=None,
        attempt=_P("p_attempt"),
        lease_until=_P("p_until"),
        started_at=_P("p_now"),
        finished_at=None,
        worker=_P("p_worker"),
        retries=_P("p_retries"),
        updated_at=_P("p_now"),
    )
)
_RENEW = (
    sa.update(job_runs)
    .where(
        job_runs.c.id == _P("p_run_id"),
        job_runs.c.attempt == _P("p_attempt"),
        job_runs.c.status == RunStatus.STARTED,
    )
    .values(lease_until=_P("p_until"))
)


def claim_fresh(
    connection: Connection,
    run_id: str,
    *,
    attempt: str,
    until: datetime,
    now: datetime,
    worker: str,
    retries: int,
) -> bool:
    """Claim a row nobody has started (one round trip). True if claimed."""
    parameters = {
        "p_run_id": run_id,
        "p_attempt": attempt,
        "p_until": until,
        "p_now": now,
        "p_worker": worker,
        "p_retries": retries,
    }
    return bool(connection.execute(_CLAIM_FRESH, parameters).rowcount == 1)


def read_claim(
    connection: Connection, run_id: str
) -> sa.Row[str, str | None, datetime | None, str | None, int] | None:
    """The row's status, attempt, lease_until, reason and retries; None without a row."""
    return connection.execute(_CLAIM_READ, {"p_run_id": run_id}).one_or_none()


def take_claim(
    connection: Connection,
    run_id: str,
    *,
    found_status: str,
    found_attempt: str | None,
    attempt: str,
    until: datetime,
    now: datetime,
    worker: str,
    retries: int,
    takeover: bool,
) -> bool:
    """Compare-and-set the row, as read (`found_*`), to `started` for `attempt`; with
    `takeover`, count one more takeover. False if another claimer changed it first."""
    values: dict[str, Any] = {
        "status": RunStatus.STARTED,
        "reason": None,
        "attempt": attempt,
        "lease_until": until,
        "started_at": now,
        "finished_at": None,
        "worker": worker,
        "retries": retries,
        "updated_at": now,
    }
    if takeover:
        values["takeovers"] = job_runs.c.takeovers + 1
    statement = (
        sa.update(job_runs)
        .where(
            job_runs.c.id == run_id,
            job_runs.c.status == found_status,
            job_runs.c.attempt.is_not_distinct_from(found_attempt),
        )
        .values(**values)
    )
    return bool(connection.execute(statement).rowcount == 1)


def renew_leases(connection: Connection, held: Mapping[str, str], *, until: datetime) -> None:
    """Extend to `until` the leases of the runs held (run id -> attempt), one executemany."""
    items = [{"p_run_id": k, "p_attempt": v, "p_until": until} for k, v in held.items()]
    connection.execute(_RENEW, items)


def _held_by(run_id: str, prefix: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        job_runs.c.id == run_id,
        job_runs.c.status == RunStatus.STARTED,
        job_runs.c.attempt.startswith(prefix, autoescape=True),
    )


def release_lease(connection: Connection, run_id: str, *, prefix: str, now: datetime) -> None:
    """End now the lease of a run held by attempts `prefix*`."""
    connection.execute(
        sa.update(job_runs).where(*_held_by(run_id, prefix)).values(lease_until=now, updated_at=now)
    )


def fail_lost(
    connection: Connection, run_id: str, *, prefix: str, error: str, now: datetime
) -> None:
    """Fail a run still held by attempts `prefix*` (nobody took it over)."""
    connection.execute(
        sa.update(job_runs)
        .where(*_held_by(run_id, prefix))
        .values(
            status=RunStatus.FAILED, error=error, finished_at=now, lease_until=None, updated_at=now
        )
    )


def expire_run(connection: Connection, run_id: str, *, now: datetime) -> None:
    """A run that never started becomes 'expired' (its message expired)."""
    connection.execute(
        sa.update(job_runs)
        .where(
            job_runs.c.id == run_id,
            job_runs.c.status.not_in(FINAL_RUN_STATUSES),
            job_runs.c.status != RunStatus.STARTED,
        )
        .values(
            status=RunStatus.EXPIRED,
            reason=RunReason.NOT_TAKEN,
            finished_at=now,
            updated_at=now,
        )
    )


# The final writes, executed in batches (executemany) by the worker's LedgerWriter with
# the parameters `worker.claims.Ledger.*_values` build. Each lands while the row
# carries our attempt: still `started`, or closed as lost by the reaper (the holder's
# own report is the truth).
_OURS = (job_runs.c.id == _P("p_run_id"), job_runs.c.attempt == _P("p_attempt"))
_SUCCEEDED = (
    sa.update(job_runs)
    .where(*_OURS)
    .values(
        status=RunStatus.SUCCEEDED,
        reason=None,
        finished_at=_P("p_finished_at"),
        lease_until=None,
        result_summary=_P("p_summary"),
        error=None,
        updated_at=_P("p_updated_at"),
    )
)
_FAILED = (
    sa.update(job_runs)
    .where(*_OURS)
    .values(
        status=RunStatus.FAILED,
        reason=None,
        error=_P("p_error"),
        worker=_P("p_worker"),
        finished_at=_P("p_finished_at"),
        lease_until=None,
        updated_at=_P("p_updated_at"),
    )
)
_RETRIED = (
    sa.update(job_runs)
    .where(*_OURS)
    .values(
        status=RunStatus.RETRIED,
        reason=None,
        error=_P("p_error"),
        retries=_P("p_retries"),
        finished_at=_P("p_finished_at"),
        lease_until=None,
        updated_at=_P("p_updated_at"),
    )
)
# Own fire: only the count. Another fire sharing the key (an explicit idempotency
# template) is itself skipped, unless it already ran. (Not NOT IN: an expanding IN list
# cannot be used with executemany.)
_SKIPPABLE = sa.and_(
    sa.not_(_P("p_own", type_=sa.Boolean)),
    *(job_runs.c.status != status for status in (*FINAL_RUN_STATUSES, RunStatus.STARTED)),
)
_DUPLICATE = (
    sa.update(job_runs)
    .where(job_runs.c.id == _P("p_run_id"))
    .values(
        duplicates=job_runs.c.duplicates + 1,
        status=sa.case((_SKIPPABLE, RunStatus.SKIPPED.value), else_=job_runs.c.status),
        reason=sa.case((_SKIPPABLE, _P("p_reason")), else_=job_runs.c.reason),
        updated_at=_P("p_updated_at"),
    )
)
# The ledger write of each way an execution ends.
FINAL_WRITES: dict[str, sa.Update] = {
    TaskOutcome.SUCCEEDED: _SUCCEEDED,
    TaskOutcome.FAILED: _FAILED,
    TaskOutcome.RETRIED: _RETRIED,
    TaskOutcome.DUPLICATE: _DUPLICATE,
}
