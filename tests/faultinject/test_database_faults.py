"""PostgreSQL restarted twice (`pg_ctl restart -m fast`) and stopped for 15 s while runs
are in flight: every run reaches its final status within the documented bound after the
database answers again (README "Failure bounds"), each slot executes once (counted
outside the ledger), and no later slot is skipped as an overlap because of a run that
is not running any more."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest

from .rig import FaultRig, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.e2e]

JOBS = [f"db-fault-{n}" for n in range(4)]
STOP_SECONDS = 15
# README "Failure bounds": a run's final status lands within ~1 s of the database
# answering (the spool retries every second); 10 s leaves room for a loaded machine
# and for reconnecting, and still fails when a write is dropped (forever) or waits for
# a reaper (2 leases).
FINAL_BOUND = 10.0
LATE_SLOTS = 4  # slots of each job after the bound (every second): none an overlap


def in_flight_now(rig: FaultRig, *, other_than: Collection[str] = ()) -> set[str]:
    """The runs in flight, once one is that is not in `other_than` (runs of a previous
    fault): the worker is executing again since."""
    rows = wait_until(
        lambda: (rows := rig.in_flight()) and {row.id for row in rows} - set(other_than) and rows,
        timeout=20,
        what="a run in flight",
        interval=0.02,
    )
    return {row.id for row in rows}


def finals_after(rig: FaultRig, ids: set[str], since: float) -> float:
    """Seconds from `since` until every run of `ids` is final (polling)."""
    wait_until(
        lambda: (
            len(
                rig.safe_rows(
                    "SELECT id FROM job_runs WHERE id = ANY(:ids) "
                    "AND status IN ('succeeded', 'failed')",
                    ids=list(ids),
                )
            )
            == len(ids)
        ),
        timeout=60,
        what=f"final statuses of {sorted(ids)}",
        interval=0.1,
    )
    return time.monotonic() - since


def test_database_restarts_and_a_stop_leave_no_run_unfinished(
    amqp_url: str, private_pg, private_redis, make_rig
) -> None:
    rig = make_rig(
        db_url=private_pg.create_database(),
        broker_url=amqp_url,
        redis_url=private_redis.url(),
    )
    rig.write_jobs(JOBS, seconds=0.4)  # every second, max_concurrent_runs 1 (default)
    daemon = rig.daemon("daemon-a")
    wait_until(lambda: rig.safe_rows("SELECT 1 FROM job_runs"), timeout=60, what="first fire")
    worker = rig.worker("w1", concurrency=6)
    wait_until(lambda: len(rig.executions()) >= 2 * len(JOBS), timeout=30, what="runs executing")

    recoveries: list[float] = []
    caught: set[str] = set()
    for _ in range(2):
        caught = in_flight_now(rig, other_than=caught)
        private_pg.restart(mode="fast")
        recoveries.append(finals_after(rig, caught, time.monotonic()))
    caught = in_flight_now(rig, other_than=caught)
    private_pg.stop(mode="fast")
    time.sleep(STOP_SECONDS)
    private_pg.start()
    up_at = datetime.now(UTC)
    recoveries.append(finals_after(rig, caught, time.monotonic()))
    # The schedule goes on after the outage: slots past the bound, where no overlap may be
    # left (checked below), for every job.
    wait_until(
        lambda: (
            len(
                rig.rows(
                    "SELECT DISTINCT job_name FROM job_runs WHERE scheduled_time > :t",
                    t=up_at + timedelta(seconds=FINAL_BOUND + LATE_SLOTS),
                )
            )
            == len(JOBS)
        ),
        timeout=60,
        what="slots after the bound",
    )

    assert daemon.stop() == 0
    wait_until(
        lambda: (
            not rig.rows(
                "SELECT 1 FROM job_runs WHERE status IN ('scheduled', 'published', 'started')"
            )
        ),
        timeout=60,
        what="every run final",
    )
    rows = rig.ledger()
    executions = rig.executions()
    statuses = Counter((row.status, row.reason) for row in rows)
    print(
        f"\n{len(rows)} rows, {len(executions)} executions; in-flight runs final "
        f"{', '.join(f'{s:.1f}' for s in recoveries)} s after the database answered; "
        f"{dict(statuses)}"
    )
    assert max(recoveries) <= FINAL_BOUND, recoveries
    assert not {run: n for run, n in executions.items() if n > 1}
    assert set(executions) == {row.id for row in rows if row.status == "succeeded"}
    # No run was closed as lost: the workers' writes came back, none was dropped.
    assert not [row for row in rows if row.status == "failed"], statuses
    late_overlaps = [
        row
        for row in rows
        if row.reason == "overlap" and row.scheduled_time > up_at + timedelta(seconds=FINAL_BOUND)
    ]
    assert not late_overlaps, [(r.job_name, r.scheduled_time) for r in late_overlaps]
    assert "ledger unreachable" in worker.output()
    assert worker.output().count("Traceback") == 0, worker.output()[-5000:]
