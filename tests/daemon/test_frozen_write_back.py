"""A leader frozen (SIGSTOP) INSIDE its scheduler write-back transaction, after its UPDATE
of the fired rows and before its COMMIT, holds those rows' locks: the kernel keeps its
session alive, and the standby's takeover terminates only the session of the leader
lock. Before the bound (store.sessions.bound_idle) the new leader fired the rows
(still due as committed) and its own write-back then waited on those locks for as long
as the freeze lasted: nothing fired. Now the server ends the frozen transaction after
IDLE_SECONDS (3 s) of silence, so the new leader keeps firing within a bound; the
woken process finds its write-back rolled back, stays fenced, exits 3 (superseded), and
no slot is in the ledger or on the broker twice.

The freeze point is made exact, not timed: the test locks one job row, waits until the
leader's write-back UPDATE waits on it, freezes the leader, then releases the row, so the
frozen process's UPDATE completes on the server and its transaction sits idle, holding
the rows. Only the daemon processes the test started are frozen, never the server."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from .helpers import wait_for_next_term, wait_for_slots_after, wait_until, write_jobs
from .test_exactly_once import assert_broker_matches_ledger, assert_every_slot_present

pytestmark = [pytest.mark.services, pytest.mark.slow]

JOBS = [f"frozen-write-back-{n}" for n in range(4)]
# The new leader's slots are recorded within this many seconds of its takeover (it
# rewinds, then fires every second). Before the bound: never, while the freeze lasted.
FIRING_BOUND = 5.0
# The burst being written back (its rows' committed next_run_time) recorded and
# published: the recorder thread is done with it before the freeze. (A recorder frozen
# between its fence check and its insert is another window, test_late_record's.)
BURST_PUBLISHED = (
    "SELECT count(*) FROM job_runs r JOIN apscheduler_jobs j ON j.id = r.job_name "
    "WHERE r.scheduled_time = to_timestamp(j.next_run_time) AND r.status = 'published'"
)
WRITE_BACK_WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE '%UPDATE apscheduler_jobs AS stored%'"
)
ACTIVITY = (
    "SELECT pid, application_name, state, wait_event_type, left(query, 60) "
    "FROM pg_stat_activity WHERE datname = current_database()"
)


def test_a_leader_frozen_inside_its_write_back_does_not_stall_the_next(
    make_cluster, broker
) -> None:
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, JOBS)
    first = cluster.start("daemon-a")
    wait_until(lambda: cluster.count_runs("published") >= 2 * len(JOBS), timeout=60, what="fires")
    second = cluster.start("daemon-b")
    wait_until(
        lambda: cluster.rows("SELECT 1 FROM reconciler_instances WHERE instance = 'daemon-b'"),
        timeout=30,
        what="the standby",
    )
    name, epoch = cluster.leader() or ("", 0)
    assert name == "daemon-a"

    with cluster.engine.connect() as holder:
        holder.execute(
            sa.text("SELECT 1 FROM apscheduler_jobs WHERE id = :id FOR UPDATE"), {"id": JOBS[0]}
        )
        wait_until(
            lambda: cluster.rows(WRITE_BACK_WAITING),
            timeout=10,
            what="the leader's write-back waiting on the locked row",
        )
        wait_until(
            lambda: cluster.scalar(BURST_PUBLISHED) == len(JOBS),
            timeout=10,
            what="the burst published",
        )
        os.kill(first.pid, signal.SIGSTOP)
        holder.commit()  # the frozen UPDATE completes; its COMMIT never comes
    frozen_at = time.monotonic()
    try:
        new = wait_for_next_term(cluster, epoch)
        took_over = datetime.now(UTC)
        takeover = time.monotonic() - frozen_at
        wait_until(
            lambda: (
                cluster.scalar(
                    "SELECT count(DISTINCT job_name) FROM job_runs WHERE scheduled_time > :t",
                    t=took_over + timedelta(seconds=1),
                )
                == len(JOBS)
            ),
            timeout=FIRING_BOUND,
            what="the new leader's fires while the old one is frozen in its write-back",
            evidence=lambda: (
                f"{cluster.rows(ACTIVITY)}\n{second.output()[-3000:]}\n{first.output()[-2000:]}"
            ),
        )
        firing = time.monotonic() - frozen_at - takeover
    finally:
        os.kill(first.pid, signal.SIGCONT)
    resumed_at = datetime.now(UTC)

    # The woken process: its write-back was rolled back; fenced, it exits 3, never leads.
    first.process.wait(30)
    assert first.process.returncode == 3, first.output()[-3000:]
    wait_for_slots_after(
        cluster, resumed_at, 2 * len(JOBS), timeout=10, what="the new leader firing after the wake"
    )
    assert cluster.leader() == new
    assert second.stop() == 0

    rows = cluster.ledger("frozen-write-back-")
    assert_every_slot_present(rows, JOBS, allowed={"published", "missed"})
    assert sum(row.duplicates for row in rows) == 0, [row for row in rows if row.duplicates]
    assert_broker_matches_ledger(cluster, broker)
    print(
        f"\nnew leader {takeover:.2f} s after the freeze, its fires {firing:.2f} s after "
        f"that; frozen {(resumed_at - took_over).total_seconds() + takeover:.1f} s"
    )
