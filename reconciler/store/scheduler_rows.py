"""Raw access to APScheduler's `apscheduler_jobs` table, never through its job store.

APScheduler 3's `get_all_jobs()` / `get_due_jobs()` DELETE every row whose callable
cannot be imported (upstream #341): a reader that merely lacks a module would wipe the
table. So we read the columns with SQL and unpickle the state dict ourselves: that
needs APScheduler's trigger classes, never the job's callable. We write rows in the
exact format `SQLAlchemyJobStore` writes, so the scheduler reads them as its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy.engine import Connection

from reconciler.core.fires import FIRE_CALLABLE
from reconciler.core.memo import IdentityMemo
from reconciler.core.state import SchedulerJob, SchedulerRow
from reconciler.core.triggers import describe_trigger
from reconciler.store.db import upsert
from reconciler.store.job_state import StateCodec
from reconciler.store.tables import apscheduler_jobs


@dataclass(frozen=True, slots=True)
class WrittenRow:
    """A row as we wrote it: the job, its next_run_time column, its pickled state."""

    job: SchedulerJob
    next_run_time: float | None
    state: bytes


class RowDecoder:
    """Decodes pickled job states without decoding the same content twice.

    Templates by state digest serve rows we wrote ourselves (`remember`: no later pass
    unpickles them; unpickling is the dearest part of reading the table). On PostgreSQL,
    decoded rows are also kept by (id, row version): a row version never changes, so a
    later read fetches the state only of rows written since. Both are pruned at every
    read to what the table holds (plus what was written since), so a daemon's memory
    does not grow with fires.
    """

    def __init__(self) -> None:
        self._templates: dict[str, SchedulerRow] = {}
        self._written: set[str] = set()  # digests remembered since the last read
        # The last read: (id, row version) -> (decoded row, digest of its state).
        self.versions: dict[tuple[str, int], tuple[SchedulerRow, str]] = {}
        # Fingerprints of decoded triggers: those load_state shared are described once.
        self._fingerprints = IdentityMemo(describe_trigger, limit=10_000)
        self._codec = StateCodec()  # nested pickles loaded once per content

    def decode(self, row_id: str, next_run_time: float | None, job_state: bytes) -> SchedulerRow:
        return self.decode_digested(row_id, next_run_time, job_state, state_digest(job_state))

    def decode_digested(
        self, row_id: str, next_run_time: float | None, job_state: bytes, digest: str
    ) -> SchedulerRow:
        """`decode`, with the state's digest already computed."""
        template = self._templates.get(digest)
        if template is None:
            template = self._templates[digest] = _unpickle(
                row_id, job_state, self._codec, self._fingerprints
            )
        return _with_next_run_time(template, row_id, next_run_time)

    def remember(self, written: Iterable[WrittenRow]) -> dict[str, SchedulerRow]:
        """Learn rows we wrote ourselves, so that no later pass unpickles them. Returns
        each row as reading it back would decode it."""
        decoded: dict[str, SchedulerRow] = {}
        for row in written:
            job = row.job
            digest = state_digest(row.state)
            template = self._templates[digest] = SchedulerRow(
                id=job.id,
                next_run_time=None,
                func=FIRE_CALLABLE,
                fingerprint=job.fingerprint,
                kwargs=dict(job.kwargs),
                misfire_grace_time=job.misfire_grace_time,
                coalesce=job.coalesce,
                max_instances=job.max_instances,
            )
            self._written.add(digest)
            decoded[job.id] = _with_next_run_time(template, job.id, row.next_run_time)
        return decoded

    def keep_only(self, digests: set[str]) -> None:
        """After a read: forget templates of states no longer in the table."""
        keep = digests | self._written
        self._templates = {d: t for d, t in self._templates.items() if d in keep}
        self._written = set()


def state_digest(job_state: bytes) -> str:
    return hashlib.md5(job_state, usedforsecurity=False).hexdigest()


def read_scheduler_rows(
    connection: Connection, decoder: RowDecoder | None = None
) -> dict[str, SchedulerRow]:
    """Every row, decoded. On PostgreSQL only rows written since the last read (a new
    row version, `xmin`) travel with their state; the others are known already."""
    decoder = decoder or RowDecoder()
    if connection.dialect.name == "postgresql":
        return _read_new_versions(connection, decoder)
    table = apscheduler_jobs
    query = sa.select(table.c.id, table.c.next_run_time, table.c.job_state)
    rows, digests = {}, set()
    for row_id, next_run_time, state in connection.execute(query).all():
        digest = state_digest(state)
        digests.add(digest)
        rows[row_id] = decoder.decode_digested(row_id, next_run_time, state, digest)
    decoder.keep_only(digests)
    return rows


# xmin::text::bigint: xid has no cast to an integer type, its text form does. The
# states are asked for by one array parameter, not thousands of IN parameters.
_VERSIONS = sa.text("SELECT id, xmin::text::bigint FROM apscheduler_jobs")
_STATES = sa.text(
    "SELECT id, next_run_time, job_state, xmin::text::bigint FROM apscheduler_jobs"
    " WHERE id = ANY(:ids)"
)
_ALL_STATES = sa.text(
    "SELECT id, next_run_time, job_state, xmin::text::bigint FROM apscheduler_jobs"
)


def _read_new_versions(connection: Connection, decoder: RowDecoder) -> dict[str, SchedulerRow]:
    rows: dict[str, SchedulerRow] = {}
    current: dict[tuple[str, int], tuple[SchedulerRow, str]] = {}
    previous = decoder.versions
    if not previous:  # nothing decoded yet (a one-shot command, a first pass): one query
        states = connection.execute(_ALL_STATES).all()
    else:
        unknown: list[str] = []
        for row_id, version in connection.execute(_VERSIONS).all():
            known = previous.get((row_id, version))
            if known is None:
                unknown.append(row_id)
            else:
                rows[row_id] = known[0]
                current[row_id, version] = known
        states = connection.execute(_STATES, {"ids": unknown}).all() if unknown else []
    for row_id, next_run_time, job_state, version in states:
        # Written between the two queries: the newer version is what is read.
        digest = state_digest(job_state)
        rows[row_id] = decoder.decode_digested(row_id, next_run_time, job_state, digest)
        current[row_id, version] = (rows[row_id], digest)
    decoder.versions = current
    decoder.keep_only({digest for _, digest in current.values()})
    return rows


def upsert_scheduler_rows(
    connection: Connection,
    rows: Iterable[tuple[SchedulerJob, datetime | None]],
    *,
    expect_new: bool = False,
) -> list[WrittenRow]:
    """Write (job, next_run_time) pairs; next_run_time None = paused. Returns what was
    written, for RowDecoder.remember. `expect_new`: see store.db.upsert."""
    codec = StateCodec()  # the rows of one write share triggers and next run times
    written = [
        WrittenRow(
            job, datetime_to_utc_timestamp(next_run_time), codec.pickle_job(job, next_run_time)
        )
        for job, next_run_time in rows
    ]
    values = [
        {"id": row.job.id, "next_run_time": row.next_run_time, "job_state": row.state}
        for row in written
    ]
    if values:
        upsert(connection, apscheduler_jobs, values, key="id", expect_new=expect_new)
    return written


def delete_scheduler_rows(connection: Connection, ids: Iterable[str]) -> None:
    for chunk in _chunks(list(ids), 5000):
        connection.execute(sa.delete(apscheduler_jobs).where(apscheduler_jobs.c.id.in_(chunk)))


def _unpickle(
    row_id: str, job_state: bytes, codec: StateCodec, fingerprint: Callable[[Any], str]
) -> SchedulerRow:
    try:
        state: Mapping[str, Any] = codec.load_state(job_state)
        return SchedulerRow(
            id=row_id,
            next_run_time=None,
            func=str(state.get("func", "")),
            fingerprint=fingerprint(state.get("trigger")),
            kwargs=dict(state.get("kwargs") or {}),
            misfire_grace_time=state.get("misfire_grace_time"),
            coalesce=bool(state.get("coalesce", True)),
            max_instances=int(state.get("max_instances", 1)),
        )
    except Exception:  # noqa: BLE001 - any undecodable state is drift, never a crash
        return SchedulerRow(id=row_id, next_run_time=None, readable=False)


def _with_next_run_time(
    row: SchedulerRow, row_id: str, next_run_time: float | None
) -> SchedulerRow:
    # Spelled out: dataclasses.replace introspects the fields, and this runs for every row.
    return SchedulerRow(
        row_id,
        next_run_time,
        row.func,
        row.fingerprint,
        row.kwargs,
        row.misfire_grace_time,
        row.coalesce,
        row.max_instances,
        row.readable,
    )


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_next_run_times(connection: Connection, ids: list[str]) -> dict[str, float]:
    """Current next_run_time of the given rows (paused or missing rows are left out)."""
    table = apscheduler_jobs
    found: dict[str, float] = {}
    for chunk in _chunks(ids, 5000):
        query = sa.select(table.c.id, table.c.next_run_time).where(table.c.id.in_(chunk))
        for row_id, next_run_time in connection.execute(query):
            if next_run_time is not None:
                found[row_id] = next_run_time
    return found
