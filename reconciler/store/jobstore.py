"""The job store the leader's APScheduler runs on: APScheduler's own SQLAlchemyJobStore,
restricted to the rows WE own and forbidden to delete what it cannot read.

Two upstream behaviours would break our promises:
- `_get_jobs` DELETES every row whose callable cannot be imported (upstream #341);
- the scheduler fires every row of the table, including `apscheduler_jobs` rows that
  belong to someone else (we report foreign rows and must never touch them).
So every query here is limited to ids in `scheduled_jobs`, and a row that cannot be
restored is skipped (and logged once) instead of deleted: the reconciler repairs it.

A third one loses slots on a leader crash: APScheduler moves a job's next_run_time on
(and commits it) right after handing the slot to the executor, while the slot's ledger
row is written a few milliseconds later by the Dispatcher's pipeline. A leader killed
in between (measured: SIGKILL 15 ms after a second boundary, 1 slot of 20 jobs gone) or
fenced in between (fire_job refuses: nothing recorded) leaves a slot that is neither in
the ledger nor due any more. `rewind_lost_slots` (the new leader, before its scheduler
starts) finds those slots and makes them due again; see its docstring.

A fourth makes a fenced scheduler lose slots AFTER the next leader's rewind: woken from a
pause while another process already leads (or starved until its lease check came too
late), the old scheduler still takes due jobs, the fence refuses each fire, and
APScheduler moves next_run_time on (or deletes a one-off job) all the same. Measured
(tests/daemon/test_first_slot.py, a leader frozen 3.3 s): the standby took over and
rewound, then the woken process refused a slot that fell due during its freeze and moved
it on, lost for good. So the store is fenced too (`is_leader`, the elector's): while
this process does not lead, it shows its scheduler no due job and no next run time, and
takes no fired job to write back nor removes one; the rows stay as they are for the
leader. What it took while it led is still written back, each row only if still as read
(a compare-and-set: a row the next leader touched meanwhile is left to it): those fires
were accepted, so their slots reach the ledger (the Dispatcher records them, late if it
must).

A write-back that fails (a database restart, a deadlock victim) stays pending and is
retried by the next flush. `get_next_run_time`, which APScheduler 3 calls outside any
try (an exception there ended the scheduler's thread for good while the process kept
leading), logs the error and wakes the scheduler again in RETRY_SECONDS instead. Every
pass flushes before it takes due jobs, so while the write-back fails NOTHING fires, for
any job, with the thread alive: retried for at most GIVE_UP_SECONDS (and
GIVE_UP_ATTEMPTS flushes), then the store declares itself failed (`failure`, see
`_write_back_failed`) and the daemon gives the lead up as for a dead scheduler thread.

A frozen writer (SIGSTOP, a VM pause) caught inside its write-back transaction, after
its UPDATE, holds the fired rows' locks for as long as it is frozen: the kernel keeps its
session alive, and the next leader terminates only its lock's session. Before this
bound (tests/daemon/test_frozen_write_back.py): the new leader took over, fired the rows
(still due as committed), and its own write-back waited on those locks until the frozen
process woke; nothing fired meanwhile. So on PostgreSQL the write-back (and a rewind)
bounds its transaction's silence (store.sessions.bound_idle, set after the burst's
encoding): the server ends that session once the client is silent IDLE_SECONDS (3 s)
between statements, rolling the write-back back. The slots are in the ledger already
(the next leader's fires of them are handed over); the woken process finds its commit
failed, keeps the rows pending, and the next flush writes each only if still as read
(the CAS above), fenced like any write-back of a process that no longer leads. The
Dispatcher's ledger transactions are bounded the same way; the engine's other
transactions (a reconcile pass's, a full read unpickling its rows) are not. The server
counts only the client's silence between statements, so a healthy leader's burst of any
size is never cut (store.sessions).

And one thing of ours: a fire's write-back keeps the row's record. `written_scheduler_rows`
names, by SHA-256, the bytes an apply wrote for a job (store.scheduler_rows), so that a
one-shot plan, and the no-op check of `reconcile plan`, need not decode them. A fire
rewrites the row (its next run time is in the pickled state), which used to orphan the
record: beside a running daemon every CI plan decoded the fired rows and declined its
fast check. So on PostgreSQL, in the statement that writes the fired jobs back, each
record that named the bytes as read is moved to the bytes written, when these hold the
same job for the plan (scheduler_rows.ContentCheck: everything but the next run time,
which the plan reads from its column). A record never names bytes it does not vouch for:
a row rewritten in between is not written back, nor its record moved; a write-back that
changed the job (a job modified through the scheduler's API) drops the match, and the
plan decodes the row. SQLite keeps the old behaviour (the fast check is PostgreSQL's).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime

from reconciler.core.moments import rfc3339
from reconciler.core.triggers import first_fire_of
from reconciler.store.job_state import StateCodec
from reconciler.store.ledger import read_rewind_anchors
from reconciler.store.own_writes import OwnWrites, WriteBack
from reconciler.store.scheduler_rows import ContentCheck
from reconciler.store.sessions import bound_idle
from reconciler.store.tables import apscheduler_jobs, scheduled_jobs, written_scheduler_rows

log = logging.getLogger(__name__)
# Rows a new leader's rewind reads at a time (rewind_lost_slots).
REWIND_CHUNK = 1000
# After a failed write-back or next-run-time read, the scheduler is woken again this soon.
RETRY_SECONDS = 1.0
# A write-back failing for this long AND this many flushes is no passing fault: the
# store fails (module doc). 30 s outlasts a PostgreSQL restart or a deadlock retry (a
# few seconds) and the leader lease (which a database away that long ends anyway);
# every second of it fires nothing. The attempts keep one slow pass (a frozen process,
# a long UPDATE timing out) from counting as a persistent fault.
GIVE_UP_SECONDS = 30.0
GIVE_UP_ATTEMPTS = 3


def _always() -> bool:
    return True


def _without_jitter(trigger: BaseTrigger) -> BaseTrigger:
    """The trigger's slots themselves (a copy: the job's own keeps its jitter)."""
    if not getattr(trigger, "jitter", None):
        return trigger
    plain = copy.copy(trigger)
    plain.jitter = None  # both kinds of trigger that take a jitter have the attribute
    return plain


class OwnedJobStore(SQLAlchemyJobStore):
    """`SQLAlchemyJobStore(engine=...)` seeing only our jobs, never deleting unread rows."""

    def __init__(
        self,
        *,
        is_leader: Callable[[], bool] = _always,
        before_write_back: Callable[[int], object] | None = None,
        own_writes: OwnWrites | None = None,
        **options: Any,
    ) -> None:
        """`options` are SQLAlchemyJobStore's; `is_leader`: the fence (module doc). Its
        default, always true, is for stores whose process leads by construction (tests,
        benchmarks). `before_write_back(n)` is called at the end of a scheduler pass
        that fired n jobs, before they are written back (the daemon's lets a burst's
        fires be published first: `FiringService.before_write_back`). `own_writes`: the
        daemon's passes' log of what the write-backs wrote (PostgreSQL; see
        store.own_writes), added to once each has committed."""
        super().__init__(**options)
        self._is_leader = is_leader
        self._before_write_back = before_write_back
        self._own_writes = own_writes
        self._unreadable: set[str] = set()
        self._read_states: dict[str, bytes] = {}  # job id -> job_state as last read
        self._pending: dict[str, dict[str, Any]] = {}  # buffered update_job writes
        # Pending rows not yet announced to before_write_back: a retry of the same rows
        # does not wait for their publishing again (it waited once, or it timed out).
        self._unannounced = 0
        # The kept write-back's failures: since (monotonic) and how many flushes.
        self._failing_since: float | None = None
        self._failed_flushes = 0
        self.failure: str | None = None  # set once the write-back is given up
        # Loads and re-pickles this store's jobs: a fired job's shared trigger, loaded
        # once, is pickled once (the codec remembers pickles by trigger identity).
        self._codec = StateCodec()
        self._content = ContentCheck(self._codec)
        self._keeps_records: bool | None = None  # decided at the first write-back

    def _owned(self) -> sa.ColumnElement[bool]:
        owned = self.jobs_t.c.id.in_(sa.select(scheduled_jobs.c.name))
        if self._unreadable:
            owned = sa.and_(owned, self.jobs_t.c.id.not_in(sorted(self._unreadable)))
        return owned

    def get_due_jobs(self, now: datetime) -> list[Job]:
        self.flush()
        if not self._is_leader() or self.failure is not None:
            return []
        timestamp = datetime_to_utc_timestamp(now)
        return self._get_jobs(self.jobs_t.c.next_run_time <= timestamp)

    def update_job(self, job: Job) -> None:
        if not self._is_leader():  # its fire was refused: the slot stays due (module doc)
            self._read_states.pop(job.id, None)
            return
        read = self._read_states.get(job.id)
        if read is None:  # not read by us (add/modify through the scheduler API): write now
            self.flush()
            super().update_job(job)
            return
        # Pickled at flush time, after the scheduler's pass: a burst of due jobs is fired
        # first and written back after, instead of every fire waiting for the pickling
        # of the jobs before it. The state is taken now (a snapshot of the job).
        if job.id not in self._pending:
            self._unannounced += 1
        self._pending[job.id] = {
            "b_id": job.id,
            "b_read": read,
            "b_next": datetime_to_utc_timestamp(job.next_run_time),
            "b_state": job.__getstate__(),
        }

    def flush(self) -> None:
        """Write the buffered updates, each only if its row is unchanged since read."""
        if not self._pending:
            return
        pending = list(self._pending.values())
        for row in pending:
            if not isinstance(row["b_state"], bytes):  # a failed write left it pickled
                row["b_state"] = self._codec.pickle_state(row["b_state"])
        # Kept pending until written: a failed write (a database restart, a deadlock
        # victim) is retried by the next flush, with the same rows as read.
        written: WriteBack | None = None
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    records = self._records(connection)
                    written = self._flush_as_json(connection, pending, records=records)
                else:
                    table = self.jobs_t
                    statement = (
                        table.update()
                        .where(table.c.id == sa.bindparam("b_id"))
                        .where(table.c.job_state == sa.bindparam("b_read"))
                        .values(
                            next_run_time=sa.bindparam("b_next"), job_state=sa.bindparam("b_state")
                        )
                    )
                    connection.execute(statement, pending)
        except Exception:
            if self._own_writes is not None:
                self._own_writes.lose()  # committed or not: unknown
            self._write_back_failed()
            raise
        if written is not None and self._own_writes is not None:
            self._own_writes.add(written)  # committed: a pass may now count on it
        self._pending = {}
        self._failing_since = None
        self._failed_flushes = 0
        for row in pending:
            self._read_states.pop(row["b_id"], None)

    def _write_back_failed(self) -> None:
        """Count a failed flush; past GIVE_UP_SECONDS and GIVE_UP_ATTEMPTS, fail the store.

        Why failing, not dropping the rows (what the store did before it kept them): a
        dropped row stays due, so every pass fires it again, each a duplicate the
        ledger refuses, and a fault that refuses the whole statement (a statement
        timeout shorter than a burst's UPDATE, a trigger refusing one row of it) comes
        back on every pass: the leader would spin on duplicates with its health green.
        Failing is what an operator expects of a leader that cannot fire: the daemon
        gives the lead up (as for a dead scheduler thread: the standby, with its own
        connections, takes over and rewinds; this process exits 1), the failure shows
        in reconciler_scheduler_running, the healthcheck and the restart count. The
        pending slots are in the ledger: the next leader refires them at most, refused
        by the ledger and handed over (due when it took over: Dispatcher.take_over).
        Meanwhile this store fires nothing more (get_due_jobs)."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self._failed_flushes += 1
        failing = now - self._failing_since
        if self.failure is None and (
            failing >= GIVE_UP_SECONDS and self._failed_flushes >= GIVE_UP_ATTEMPTS
        ):
            self.failure = (
                f"the job store could not write back {len(self._pending)} fired jobs "
                f"for {failing:.0f} s ({self._failed_flushes} attempts)"
            )
            log.error("%s: giving the write-back up", self.failure)

    def _flush_as_json(
        self, connection: sa.Connection, pending: list[dict[str, Any]], *, records: bool
    ) -> WriteBack | None:
        """flush on PostgreSQL: ONE statement, the rows as one json parameter (states in
        base64, the state as read by its SHA-256). After a burst of 10,000 fires, an
        executemany spent most of the scheduler thread's time binding parameters in
        Python; encoding here is done in C (base64, hashlib, orjson). `records`: the same
        statement moves each row's record to its new bytes (module doc). With a log of
        own writes, the statement returns its transaction and the rows it wrote, each
        with its new version and whether it holds the same job as read (ContentCheck):
        what the log is given once committed (store.own_writes)."""
        report = self._own_writes is not None
        rows = [
            {
                "id": row["b_id"],
                "read_sha": hashlib.sha256(row["b_read"]).hexdigest(),
                "next_run_time": row["b_next"],
                "state": base64.b64encode(row["b_state"]).decode(),
                "same": (records or report) and self._content.same(row["b_read"], row["b_state"]),
            }
            for row in pending
        ]
        table = connection.dialect.identifier_preparer.format_table(self.jobs_t)
        update = (
            f"UPDATE {table} AS stored SET next_run_time = r.next_run_time, "
            "job_state = decode(r.state, 'base64') "
            "FROM json_to_recordset(CAST(:rows AS json)) "
            "AS r(id varchar, read_sha text, next_run_time float8, state text, same boolean) "
            "WHERE stored.id = r.id AND encode(sha256(stored.job_state), 'hex') = r.read_sha"
        )
        parameters = {"rows": orjson.dumps(rows).decode()}
        bound_idle(connection)  # last, after the Python work (module doc, "A frozen writer")
        if not records and not report:
            connection.execute(sa.text(update), parameters)
            return None
        statement = (
            f"WITH moved AS ({update} RETURNING stored.id, r.read_sha, r.same, "
            "encode(sha256(stored.job_state), 'hex') AS sha, "
            "stored.xmin::text::bigint AS version, stored.next_run_time)"
        )
        if records:
            statement += (
                f", kept AS (UPDATE {written_scheduler_rows.name} AS w "
                "SET state_sha256 = moved.sha FROM moved WHERE moved.same AND w.id = moved.id "
                "AND w.state_sha256 = moved.read_sha)"
            )
        statement += (
            " SELECT txid_current(), array_agg(id), array_agg(version), "
            "array_agg(hashtextextended(id, version)), array_agg(next_run_time), "
            "array_agg(same) FROM moved"
        )
        found = connection.execute(sa.text(statement), parameters).one()
        return _write_back(*found) if report else None

    def _records(self, connection: sa.Connection) -> bool:
        """Whether write-backs move the rows' records: the table is APScheduler's default
        one, beside which `written_scheduler_rows` exists (a schema from before it, a
        daemon started with --no-migrate: not until a restart)."""
        if self._keeps_records is None:
            default = self.jobs_t.name == apscheduler_jobs.name and self.jobs_t.schema is None
            self._keeps_records = default and sa.inspect(connection).has_table(
                written_scheduler_rows.name
            )
        return self._keeps_records

    def _reconstitute_job(self, job_state: bytes) -> Job:
        # SQLAlchemyJobStore's own, but with triggers loaded once per distinct content
        # and shared (see StateCodec.load_state), so that writing fired jobs
        # back pickles each shared trigger once (pickle_state).
        state = self._codec.load_state(job_state)
        state["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def lookup_job(self, job_id: str) -> Job | None:
        self.flush()
        return super().lookup_job(job_id)

    def remove_job(self, job_id: str) -> None:
        self.flush()
        if not self._is_leader():  # a one-off job whose fire was refused (module doc)
            return
        super().remove_job(job_id)

    def add_job(self, job: Job) -> None:
        self.flush()
        super().add_job(job)

    def shutdown(self) -> None:
        # A write-back still failing here (the database away) must not stop the
        # shutdown half-way (APScheduler would neither dispose the engine nor join its
        # thread, and the daemon would not hand the lock over): its slots are in the
        # ledger, so the next leader finds them due again and the ledger refuses them.
        try:
            self.flush()
        except Exception:
            log.exception(
                "the job store could not write back %d jobs at shutdown", len(self._pending)
            )
        super().shutdown()

    def get_next_run_time(self) -> datetime | None:
        # APScheduler 3 calls this at the end of its pass outside any try: an exception
        # here (the database restarting, the write-back chosen as a deadlock victim)
        # would end the scheduler's thread for good while this process kept leading.
        # So a failure is logged and the scheduler woken again soon: its next
        # get_due_jobs flushes first (and, failing, is retried by APScheduler itself).
        try:
            return self._next_run_time()
        except Exception:
            log.exception(
                "the job store could not write back or find its next run time; retried in %.0f s",
                RETRY_SECONDS,
            )
            return datetime.now(UTC) + timedelta(seconds=RETRY_SECONDS)

    def _next_run_time(self) -> datetime | None:
        # The end of a scheduler pass: write what it fired.
        if self._unannounced and self._before_write_back is not None:
            self._before_write_back(self._unannounced)
        self._unannounced = 0
        self.flush()
        if not self._is_leader() or self.failure is not None:
            return None  # sleep until woken (or stopped): nothing is ours to fire
        query = (
            sa.select(self.jobs_t.c.next_run_time)
            .where(self.jobs_t.c.next_run_time.is_not(None))
            .where(self._owned())
            .order_by(self.jobs_t.c.next_run_time)
            .limit(1)
        )
        with self.engine.begin() as connection:
            return utc_timestamp_to_datetime(connection.execute(query).scalar())

    def get_all_jobs(self) -> list[Job]:
        self.flush()
        jobs = self._get_jobs()
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def _get_jobs(self, *conditions: Any) -> list[Job]:
        query = (
            sa.select(self.jobs_t.c.id, self.jobs_t.c.job_state)
            .where(self._owned(), *conditions)
            .order_by(self.jobs_t.c.next_run_time)
        )
        jobs = []
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                try:
                    jobs.append(self._reconstitute_job(row.job_state))
                    self._read_states[row.id] = row.job_state
                except Exception:  # skip, never delete (see module doc)
                    log.exception("job %r cannot be restored; skipped until repaired", row.id)
                    self._unreadable.add(row.id)
        return jobs

    def forget_unreadable(self) -> None:
        """After a reconcile pass (which repairs unreadable rows), look at them again."""
        self._unreadable.clear()

    def rewind_lost_slots(self) -> list[tuple[str, datetime]]:
        """Make due again the slots a previous leader lost (see the module doc). Call it
        as the new leader, BEFORE the scheduler starts. Returns (job, slot) rewound.

        For each owned job with a next_run_time: its anchor (ledger.read_rewind_anchors)
        is the later of its newest ledger slot and its last change, so a job that never
        fired has one too (its first slot was lost at the flap of bench/RESULTS.md,
        "FIRST slot"). The job's first slot strictly after the anchor, per its trigger,
        should be in the ledger or still due. If it is earlier than next_run_time, it was
        lost: the row's next_run_time goes back to it, and APScheduler treats it like any
        late slot (fired if within misfire_grace_seconds, coalesced or caught up per the
        job's policy, recorded 'missed' otherwise: never bounded here, which would drop
        the older slots without a trace). Nothing is fired twice: every slot between the
        anchor and next_run_time is by definition absent from the ledger, which also
        refuses a second row per slot.

        Jitter: a jittered next_run_time lies up to `jitter` s after its slot (APScheduler
        computes the next slot from the previous jittered fire, so the slot after the
        anchor is still the one due next). Only a next_run_time beyond that slot plus
        the jitter proves a later slot was scheduled; within it (slots closer together
        than the jitter) nothing is rewound.

        Never rewound: a slot at or before the job's last change (added, rescheduled,
        resumed, renamed: its next_run_time was computed from that `now`, and an apply
        never causes an extra run). A concurrent writer (a CLI apply) wins: the row is
        only rewound if its next_run_time is still the one read.
        """
        with self.engine.connect() as connection:
            anchors = read_rewind_anchors(connection, self.jobs_t)
        rewound: list[tuple[str, datetime]] = []
        for job, state in self._scheduled_jobs():
            anchor = anchors.get(job.id)
            if anchor is None or job.next_run_time is None:
                continue
            jitter = timedelta(seconds=getattr(job.trigger, "jitter", None) or 0)
            lost = first_fire_of(_without_jitter(job.trigger), after=anchor.since)
            if lost is None or job.next_run_time <= lost + jitter:
                continue
            self._read_states[job.id] = state  # as read, while it is rewound
            try:
                if self._rewind(job, lost, anchor.next_run_time):
                    rewound.append((job.id, lost))
            finally:
                self._read_states.pop(job.id, None)
        if rewound:
            log.warning(
                "%d slots lost by the previous leader made due again (first: %s at %s)",
                len(rewound),
                rewound[0][0],
                rfc3339(rewound[0][1]),
            )
        return rewound

    def _scheduled_jobs(self) -> Iterator[tuple[Job, bytes]]:
        """Every owned job with a next run time and its state as read, in next-run-time
        order, REWIND_CHUNK rows at a time (keyset on (next_run_time, id)): the rewind
        looks at each job once, and 100,000 APScheduler jobs read at once, with their
        states kept as read until each fired (get_all_jobs), took ~500 MB of a new
        leader's resident size for good. A row that cannot be restored is skipped and
        logged, as `_get_jobs` does. A row rewound meanwhile moves earlier: not seen
        again."""
        table = self.jobs_t
        after: tuple[float, str] | None = None
        while True:
            query = (
                sa.select(table.c.id, table.c.next_run_time, table.c.job_state)
                .where(self._owned(), table.c.next_run_time.is_not(None))
                .order_by(table.c.next_run_time, table.c.id)
                .limit(REWIND_CHUNK)
            )
            if after is not None:
                query = query.where(sa.tuple_(table.c.next_run_time, table.c.id) > after)
            with self.engine.begin() as connection:
                rows = connection.execute(query).all()
            for row_id, _, state in rows:
                try:
                    job = self._reconstitute_job(state)
                except Exception:  # skip, never delete (see module doc)
                    log.exception("job %r cannot be restored; skipped until repaired", row_id)
                    self._unreadable.add(row_id)
                    continue
                yield job, state
            if len(rows) < REWIND_CHUNK:
                return
            after = (rows[-1][1], rows[-1][0])

    def _rewind(self, job: Job, slot: datetime, stored: float) -> bool:
        job.next_run_time = slot
        state = self._codec.pickle_state(job.__getstate__())
        statement = (
            self.jobs_t.update()
            .where(self.jobs_t.c.id == job.id, self.jobs_t.c.next_run_time == stored)
            .values(next_run_time=datetime_to_utc_timestamp(slot), job_state=state)
        )
        read = self._read_states.get(job.id)
        with self.engine.begin() as connection:
            bound_idle(connection)  # module doc, "A frozen writer"
            if not connection.execute(statement).rowcount:
                return False
            if read is not None and self._records(connection) and self._content.same(read, state):
                records = written_scheduler_rows
                connection.execute(  # the record moves with the bytes (module doc)
                    records.update()
                    .where(
                        records.c.id == job.id,
                        records.c.state_sha256 == hashlib.sha256(read).hexdigest(),
                    )
                    .values(state_sha256=hashlib.sha256(state).hexdigest())
                )
            return True


def _write_back(
    txid: int,
    ids: list[str] | None,
    versions: list[int] | None,
    hashes: list[int] | None,
    next_run_times: list[float | None] | None,
    same: list[bool] | None,
) -> WriteBack:
    """The WriteBack of `_flush_as_json`'s statement: its arrays are NULL when it
    updated no row (each write-back counts as one writing transaction all the same)."""
    moved, other = [], []
    for row_id, version, hashed, next_run_time, kept in zip(
        ids or (), versions or (), hashes or (), next_run_times or (), same or (), strict=True
    ):
        if kept:
            moved.append((row_id, int(version), int(hashed), next_run_time))
        else:
            other.append(row_id)
    return WriteBack(int(txid), tuple(moved), tuple(other))
