"""Raw access to APScheduler's `apscheduler_jobs` table, never through its job store.

APScheduler 3's `get_all_jobs()` / `get_due_jobs()` DELETE every row whose callable
cannot be imported (upstream #341): a reader that merely lacks a module would wipe the
table. So we read the columns with SQL and unpickle the state dict ourselves: that
needs APScheduler's trigger classes, never the job's callable. We write rows in the
exact format `SQLAlchemyJobStore` writes, so the scheduler reads them as its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy.engine import Connection

from reconciler.core.fires import FIRE_CALLABLE
from reconciler.core.memo import IdentityMemo, interned
from reconciler.core.state import (
    DerivedDict,
    InventoryRow,
    SchedulerJob,
    SchedulerRow,
    pack_kwargs,
)
from reconciler.core.triggers import describe_trigger
from reconciler.spec.records import installed_code
from reconciler.store import job_state as state_codec
from reconciler.store.binary_copy import CopyData, copied_as_new, copy_data
from reconciler.store.db import upsert
from reconciler.store.fingerprint import NewVersions
from reconciler.store.job_state import StateCodec, same_but_next_run_time
from reconciler.store.own_writes import WriteBack
from reconciler.store.tables import apscheduler_jobs, written_scheduler_rows

# What a written row was made for: the job's spec hash and revision (see row_code).
Basis = tuple[str, str | None]


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

    def __init__(self, *, compact: bool = False) -> None:
        """`compact`: decoded arguments kept as their JSON text (core.state.PackedKwargs;
        those JSON would not give back, with their strings interned), for a process that
        keeps the rows (a daemon: ~1.8 KB -> ~0.4 KB a row); a one-shot read does not pay
        for it."""
        self._share: Callable[[Any], Any] = _packed if compact else _as_is
        self._templates: dict[str, SchedulerRow] = {}
        self._written: set[str] = set()  # digests remembered since the last read
        # The last read: id -> (row version, hash of (id, version) as a fingerprint sums
        # it, decoded row, digest of its state), the rows by id, and (rows, sum of those
        # hashes): what `patch_scheduler_rows` starts from. `horizon` (set by the
        # caller): no row version missing from `versions` was written before it (see
        # store.fingerprint).
        self.versions: dict[str, tuple[int, int, SchedulerRow, str]] = {}
        self.rows: dict[str, SchedulerRow] | None = None
        self.summary: tuple[int, int] | None = None
        self.horizon: int | None = None
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
                row_id, job_state, self._codec, self._fingerprints, self._share
            )
        return _with_next_run_time(template, row_id, next_run_time)

    def decode_passing(
        self, row_id: str, next_run_time: float | None, job_state: bytes, digest: str
    ) -> SchedulerRow:
        """`decode_digested`, keeping no template for a content seen for the first time
        (a fire's write-back: its next run time is in the state, so no other row has
        the same bytes)."""
        template = self._templates.get(digest)
        if template is None:
            template = _unpickle(row_id, job_state, self._codec, self._fingerprints, self._share)
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
                kwargs=self._share(dict(job.kwargs)),
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


def _as_is(value: Any) -> Any:
    return value


def _packed(kwargs: dict[str, Any]) -> Mapping[str, Any]:
    """A daemon's decoded arguments: as JSON text (core.state.PackedKwargs) when it
    reads back equal, else with their strings interned (core.memo.interned)."""
    packed = pack_kwargs(kwargs)
    return interned(packed) if packed is kwargs else packed


class ContentCheck:
    """Whether a row's new state holds the same job as its old one for the plan: every
    field the drift check compares (SchedulerJob.matches, the repair's row key), the
    next run time aside. The daemon's job store asks it of each fire's write-back, to
    carry the row's record in `written_scheduler_rows` over to the new bytes
    (store.jobstore). The bytes are compared first (job_state.same_but_next_run_time:
    every fire but the first after a write); else both states are decoded as a plan
    decodes them (the first fire: the bytes an apply wrote share strings differently
    from the ones the scheduler writes back). `codec`: the job store's own, whose loaded
    triggers and moments it shares."""

    def __init__(self, codec: StateCodec) -> None:
        self._codec = codec
        self._fingerprints = IdentityMemo(describe_trigger, limit=10_000)

    def same(self, old: bytes, new: bytes) -> bool:
        if same_but_next_run_time(old, new):
            return True
        before = _unpickle("", old, self._codec, self._fingerprints)
        return before.readable and before == _unpickle("", new, self._codec, self._fingerprints)


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
_VERSION = "xmin::text::bigint, hashtextextended(id, xmin::text::bigint)"
_VERSIONS = sa.text(f"SELECT id, {_VERSION} FROM apscheduler_jobs")
_STATES = sa.text(
    f"SELECT id, next_run_time, job_state, {_VERSION} FROM apscheduler_jobs WHERE id = ANY(:ids)"
)
_ALL_STATES = sa.text(f"SELECT id, next_run_time, job_state, {_VERSION} FROM apscheduler_jobs")


def _read_new_versions(connection: Connection, decoder: RowDecoder) -> dict[str, SchedulerRow]:
    rows: dict[str, SchedulerRow] = {}
    current: dict[str, tuple[int, int, SchedulerRow, str]] = {}
    previous = decoder.versions
    # Rows taken one by one, not by `.all()`: the driver converts a fetchall in one C
    # call holding the GIL, 1-2 s for 100,000 states, long enough for a daemon's health
    # thread to miss its lease confirmation (docs/scaling.md).
    if not previous:  # nothing decoded yet (a one-shot command, a first pass): one query
        states = list(connection.execute(_ALL_STATES))
    else:
        unknown: list[str] = []
        for row_id, version, _ in connection.execute(_VERSIONS).all():
            known = previous.get(row_id)
            if known is None or known[0] != version:
                unknown.append(row_id)
            else:
                rows[row_id] = known[2]
                current[row_id] = known
        states = list(connection.execute(_STATES, {"ids": unknown})) if unknown else []
    for row_id, next_run_time, job_state, version, hashed in states:
        # Written between the two queries: the newer version is what is read.
        digest = state_digest(job_state)
        rows[row_id] = decoder.decode_digested(row_id, next_run_time, job_state, digest)
        current[row_id] = (version, hashed, rows[row_id], digest)
    decoder.versions, decoder.rows = current, rows
    decoder.summary = (len(current), sum(known[1] for known in current.values()))
    decoder.keep_only({known[3] for known in current.values()})
    return rows


def patch_scheduler_rows(
    connection: Connection, decoder: RowDecoder, new: NewVersions, fingerprint: tuple[int, int]
) -> dict[str, SchedulerRow] | None:
    """The rows of the table as `fingerprint` summarises them, made from the decoder's
    last read and the rows written since its horizon (`new`, read with
    `decoder.horizon` in the same snapshot as `fingerprint`): only those rows' states
    are fetched and decoded. None when that cannot be done (no read yet, a row deleted
    since, a version the horizon missed: the sums then differ; a row rewritten between
    the two queries): the caller reads every version instead.

    The result is a DerivedDict of the last read's mapping, so a plan against it
    examines the moved rows only (core.plan_basis). At 100,000 jobs, a daemon's pass
    after a few seconds of fires (hundreds a second) moved hundreds of rows, and reading
    100,000 versions to find them was most of a no-op pass."""
    base, summary, versions = decoder.rows, decoder.summary, decoder.versions
    if base is None or summary is None:
        return None
    moved = []
    for row_id, version, hashed in new.rows:
        known = versions.get(row_id)
        if known is None or known[0] != version:
            moved.append((row_id, version, hashed))
    replaced = [versions[row_id][1] for row_id, _, _ in moved if row_id in versions]
    count = summary[0] + len(moved) - len(replaced)
    total = summary[1] + sum(hashed for _, _, hashed in moved) - sum(replaced)
    if (count, total) != fingerprint:
        return None
    if not moved:
        return base
    wanted = {row_id: (version, hashed) for row_id, version, hashed in moved}
    read = {row[0]: row for row in connection.execute(_STATES, {"ids": list(wanted)})}
    if len(read) != len(wanted) or any(tuple(read[i][3:]) != wanted[i] for i in wanted):
        return None  # rewritten or deleted since the fingerprint: read everything
    rows = DerivedDict(base, base=base, changed=wanted)
    for row_id, next_run_time, job_state, version, hashed in read.values():
        digest = state_digest(job_state)
        rows[row_id] = decoder.decode_passing(row_id, next_run_time, job_state, digest)
        versions[row_id] = (version, hashed, rows[row_id], digest)
    decoder.rows, decoder.summary = rows, (count, total)
    return rows


def patch_own_writes(
    connection: Connection,
    decoder: RowDecoder,
    writes: Iterable[WriteBack],
    reread: Iterable[str],
) -> dict[str, SchedulerRow] | None:
    """The rows of the table, made from the decoder's last read and what was written
    since, when the caller knows nobody else wrote the table meanwhile (store.own_writes):
    the scheduler's write-backs `writes` (in commit order) and the rows of the ids in
    `reread` (the caller's own pass wrote them, and a write-back's `other` rows), which
    are read again by id with their versions. A row a write-back only moved to its next
    run time is the decoded row it replaced with that next run time: neither fetched
    nor decoded. None when there is no read to start from.

    A DerivedDict of the last read's mapping, like `patch_scheduler_rows`, and the
    decoder's versions and summary follow (a later `patch_scheduler_rows` starts from
    them)."""
    base, summary, versions = decoder.rows, decoder.summary, decoder.versions
    if base is None or summary is None:
        return None
    fetch = set(reread)
    moved: dict[str, tuple[int, int, float | None]] = {}
    for write in writes:
        for row_id, version, hashed, next_run_time in write.moved:
            moved[row_id] = (version, hashed, next_run_time)
        fetch.update(write.other)
    fetch.update(row_id for row_id in moved if row_id not in versions)
    changed = fetch | moved.keys()
    if not changed:
        return base
    rows = DerivedDict(base, base=base, changed=changed)
    count, total = summary
    for row_id, (version, hashed, next_run_time) in moved.items():
        if row_id in fetch:
            continue  # read again below: what the table holds now wins
        old_version, old_hash, row, digest = versions[row_id]
        if old_version != version:
            row = _with_next_run_time(row, row_id, next_run_time)
            versions[row_id] = (version, hashed, row, digest)
            total += hashed - old_hash
        rows[row_id] = row
    found = connection.execute(_STATES, {"ids": sorted(fetch)}) if fetch else ()
    for row_id, next_run_time, job_state, version, hashed in found:
        fetch.discard(row_id)
        known = versions.get(row_id)
        if known is not None and known[0] == version:
            rows[row_id] = known[2]
            continue
        digest = state_digest(job_state)
        rows[row_id] = decoder.decode_passing(row_id, next_run_time, job_state, digest)
        if known is None:
            count += 1
        else:
            total -= known[1]
        versions[row_id] = (version, hashed, rows[row_id], digest)
        total += hashed
    return _finish_patch(decoder, rows, fetch, count, total)  # `fetch`: not found


def _finish_patch(
    decoder: RowDecoder, rows: DerivedDict, gone: set[str], count: int, total: int
) -> DerivedDict:
    """Drop the rows of `gone` (read again, not found: deleted) and keep the result as
    the decoder's last read."""
    versions = decoder.versions
    for row_id in gone:
        rows.pop(row_id, None)
        known = versions.pop(row_id, None)
        if known is not None:
            count -= 1
            total -= known[1]
    decoder.rows, decoder.summary = rows, (count, total)
    return rows


def upsert_scheduler_rows(
    connection: Connection,
    rows: Iterable[tuple[SchedulerJob, datetime | None]],
    *,
    expect_new: bool = False,
    made_for: Mapping[str, Basis] | None = None,
) -> list[WrittenRow]:
    """Write (job, next_run_time) pairs; next_run_time None = paused. Returns what was
    written, for RowDecoder.remember. `expect_new`: see store.db.upsert.

    `made_for`: by job id, the (spec hash, revision) each job is `scheduler_job` of (the
    caller vouches for it: a plan's targets). Those rows are recorded in
    `written_scheduler_rows` with the digest of their bytes, so that a one-shot read
    need not decode them (read_scheduler_rows_once); any other row written loses its
    record."""
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
        _record_written(connection, written, made_for or {}, expect_new=expect_new)
    return written


# The channels of the new rows' data (`stream_new_rows`): the apscheduler_jobs rows,
# their written_scheduler_rows records.
JOB_ROWS, ROW_RECORDS = 0, 1
# The apscheduler_jobs rows are given this many at a time (~1 MB of COPY data).
STREAM_ROWS = 1000


def stream_new_rows(
    rows: Iterable[tuple[SchedulerJob, datetime | None]],
    made_for: Mapping[str, Basis],
    *,
    every: int = 0,
) -> Iterator[tuple[int, bytes]]:
    """The rows `upsert_scheduler_rows(rows, expect_new=True, made_for=...)` writes, as
    binary COPY data (store.binary_copy) made where there is no connection (engine.apply
    makes them in a forked child): (JOB_ROWS, part of the apscheduler_jobs data) every
    `every` rows (0: STREAM_ROWS) as they are made, then (ROW_RECORDS, the
    written_scheduler_rows data, whole). Each channel's parts, joined, are its whole
    data. Raises ValueError when a row is not in `made_for` (then upsert them: its
    record is deleted, not written) or has no binary form here: the parts given
    already are to be discarded."""
    every = every or STREAM_ROWS
    codec = StateCodec()
    code = row_code()
    jobs, records = CopyData(), CopyData()
    # Jobs on one schedule share their first fire time (engine.apply): its timestamp is
    # computed once per moment object.
    stamps = IdentityMemo(datetime_to_utc_timestamp, limit=10_000)
    for count, (job, next_run_time) in enumerate(rows, 1):
        basis = made_for.get(job.id)
        if basis is None:
            raise ValueError(f"no basis for {job.id}: its record would be deleted")
        stamp = None if next_run_time is None else stamps(next_run_time)
        state = codec.pickle_job(job, next_run_time)
        jobs.add((job.id, stamp, state))
        records.add((job.id, hashlib.sha256(state).hexdigest(), *basis, code))
        if count % every == 0:
            yield JOB_ROWS, jobs.take()
    yield JOB_ROWS, jobs.finish()
    yield ROW_RECORDS, records.finish()


def copy_new_rows(connection: Connection, pieces: Iterable[tuple[int, bytes]]) -> bool:
    """Write the new rows of `stream_new_rows` (PostgreSQL), in a savepoint, each
    apscheduler_jobs part sent as it comes (the records are sent after them); False,
    and nothing written, when one of their ids has a row already (then upsert them:
    see store.db.upsert). An error of `pieces` (or of the server) aborts the COPY, rolls
    the savepoint back (nothing written) and is raised."""
    records: list[bytes] = []

    def job_rows() -> Iterator[bytes]:
        for channel, data in pieces:
            if channel == JOB_ROWS:
                yield data
            else:
                records.append(data)

    def copy() -> None:
        copy_data(connection, apscheduler_jobs.name, _JOB_COLUMNS, job_rows())
        copy_data(connection, written_scheduler_rows.name, _RECORD_COLUMNS, records)

    return copied_as_new(connection, copy)


_JOB_COLUMNS = ("id", "next_run_time", "job_state")
_RECORD_COLUMNS = ("id", "state_sha256", "spec_hash", "revision", "code")


def _record_written(
    connection: Connection,
    written: list[WrittenRow],
    made_for: Mapping[str, Basis],
    *,
    expect_new: bool,
) -> None:
    code = row_code()
    records = []
    for row in written:
        basis = made_for.get(row.job.id)
        if basis is not None:
            spec_hash, revision = basis
            digest = hashlib.sha256(row.state).hexdigest()
            records.append(
                {
                    "id": row.job.id,
                    "state_sha256": digest,
                    "spec_hash": spec_hash,
                    "revision": revision,
                    "code": code,
                }
            )
    unvouched = [row.job.id for row in written if row.job.id not in made_for]
    _delete_records(connection, unvouched)
    if records:
        upsert(connection, written_scheduler_rows, records, key="id", expect_new=expect_new)


# Process-wide memo (docs/architecture.md): a constant of the installed code, as
# spec/context.py `code_digest` (it was re-read from two source files on every write).
@lru_cache(maxsize=1)
def row_code() -> str:
    """What a row's content and its decoding follow from besides (spec hash, revision):
    the installed code and libraries, this module and the state codec. A row recorded
    under other code is decoded again."""
    digest = hashlib.sha256(installed_code().encode())
    for path in (state_codec.__file__, __file__):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def delete_scheduler_rows(connection: Connection, ids: Iterable[str]) -> None:
    ids = list(ids)
    for chunk in _chunks(ids, 5000):
        connection.execute(sa.delete(apscheduler_jobs).where(apscheduler_jobs.c.id.in_(chunk)))
    _delete_records(connection, ids)


def _delete_records(connection: Connection, ids: list[str]) -> None:
    table = written_scheduler_rows
    for chunk in _chunks(ids, 5000):
        connection.execute(sa.delete(table).where(table.c.id.in_(chunk)))


# The digest PostgreSQL computes of each stored state, beside the one recorded when we
# wrote it: the states themselves do not travel.
_DIGESTS_POSTGRESQL = sa.text(
    "SELECT a.id, a.next_run_time, encode(sha256(a.job_state), 'hex'), w.state_sha256,"
    " w.spec_hash, w.revision, w.code FROM apscheduler_jobs AS a"
    " LEFT JOIN written_scheduler_rows AS w ON w.id = a.id"
)
_STATES_OF = sa.text("SELECT id, job_state FROM apscheduler_jobs WHERE id = ANY(:ids)")


def read_scheduler_rows_once(
    connection: Connection,
    inventory: Mapping[str, InventoryRow],
    decoded: dict[str, str] | None = None,
) -> dict[str, SchedulerRow]:
    """`read_scheduler_rows` for a one-shot pass, which has no decoded rows to reuse:
    a row whose stored bytes are exactly those we wrote (the SHA-256 of the stored state
    equals the one recorded in `written_scheduler_rows` when we wrote it) for the spec
    hash and revision its job's `inventory` row holds now, under the running code
    (row_code), is not decoded: it comes back `written_for` them, its content being
    `scheduler_job`'s for them. Every other row (a fire's write-back, an edit, a foreign
    or unrecorded row) is fetched and decoded as `read_scheduler_rows` does; `decoded`
    receives the SHA-256 of the bytes each was decoded from (see record_rows_in_sync)."""
    table = written_scheduler_rows
    if not sa.inspect(connection).has_table(table.name):
        return read_scheduler_rows(connection)  # a schema from before the records
    code = row_code()
    states: dict[str, bytes] = {}  # SQLite: the states, read with their digests
    found: list[tuple[Any, ...]]
    if connection.dialect.name == "postgresql":
        found = [tuple(row) for row in connection.execute(_DIGESTS_POSTGRESQL)]
    else:
        a = apscheduler_jobs
        query = sa.select(
            a.c.id,
            a.c.next_run_time,
            a.c.job_state,
            *(table.c[name] for name in ("state_sha256", "spec_hash", "revision", "code")),
        ).select_from(a.outerjoin(table, table.c.id == a.c.id))
        found = []
        for row_id, moment, state, *recorded in connection.execute(query):
            states[row_id] = state
            found.append((row_id, moment, hashlib.sha256(state).hexdigest(), *recorded))
    rows: dict[str, SchedulerRow] = {}
    unknown: dict[str, float | None] = {}
    for row_id, next_run_time, digest, recorded, spec_hash, revision, made_by in found:
        have = inventory.get(row_id)
        if (
            have is not None
            and recorded == digest
            and made_by == code
            and (spec_hash, revision) == (have.spec_hash, have.revision)
        ):
            rows[row_id] = SchedulerRow(row_id, next_run_time, written_for=(spec_hash, revision))
        else:
            unknown[row_id] = next_run_time
    if unknown and not states:
        fetched = connection.execute(_STATES_OF, {"ids": list(unknown)})
        states = {row_id: state for row_id, state in fetched}
    decoder = RowDecoder()
    for row_id, next_run_time in unknown.items():
        state = states.get(row_id)
        if state is not None:  # else deleted since the digests were read: gone
            rows[row_id] = decoder.decode(row_id, next_run_time, state)
            if decoded is not None:
                decoded[row_id] = hashlib.sha256(state).hexdigest()
    return rows


def record_rows_in_sync(connection: Connection, rows: Mapping[str, tuple[str, Basis]]) -> None:
    """Record rows a pass decoded and found to hold exactly `scheduler_job` of their
    job's (spec hash, revision): by id, (the SHA-256 of the bytes decoded, that basis).
    The next one-shot pass then need not decode them while their bytes stay the same
    (after a fire's write-back, or rows written by an older version of this code)."""
    code = row_code()
    records = [
        {
            "id": row_id,
            "state_sha256": digest,
            "spec_hash": spec_hash,
            "revision": revision,
            "code": code,
        }
        for row_id, (digest, (spec_hash, revision)) in rows.items()
    ]
    if records:
        upsert(connection, written_scheduler_rows, records, key="id")


def _unpickle(
    row_id: str,
    job_state: bytes,
    codec: StateCodec,
    fingerprint: Callable[[Any], str],
    share: Callable[[Any], Any] = _as_is,
) -> SchedulerRow:
    try:
        state: Mapping[str, Any] = codec.load_state(job_state)
        return SchedulerRow(
            id=row_id,
            next_run_time=None,
            func=str(state.get("func", "")),
            fingerprint=fingerprint(state.get("trigger")),
            kwargs=share(dict(state.get("kwargs") or {})),
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
