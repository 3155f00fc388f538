"""A leader frozen between ACCEPTING a burst of fires and RECORDING them, and replaced
during the freeze: the CI failure of test_first_slot's random flaps (9 duplicates).

The scheduler's fire only queues the slot (Dispatcher.fire, fence checked); the recorder
thread inserts it ~20 ms later. Frozen in between (SIGSTOP 12 ms after the burst, for
longer than the 3 s lease), the leader holds those slots in memory only: the standby
takes over and fires them itself (the rows still due, or made due again by its rewind).
The woken process still records what it accepted (its rows may have moved on) and finds
each slot taken: handed over, not a duplicate. Or, woken before the new leader's fire is
recorded, it records the slot first, and the new leader's fire of a slot that was due
when it took over is handed over (Dispatcher.take_over); so is its second fire of a slot
whose row the woken process wrote back after the new leader had read it. Every slot
once in the ledger, published once, no duplicate counted.

The freeze must land inside that window: an attempt that missed it (nothing accepted and
unrecorded: neither process logged such a slot) proves nothing and is repeated with
fresh state, at most ATTEMPTS times. Only processes the test started are frozen."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from .helpers import (
    BrokerCounter,
    Cluster,
    DaemonProcess,
    as_utc,
    fresh_cluster,
    wait_for_next_term,
    wait_for_slots_after,
    wait_until,
    write_jobs,
)
from .test_exactly_once import assert_broker_matches_ledger

pytestmark = [pytest.mark.services, pytest.mark.slow]

ATTEMPTS = 4
JOBS = [f"burst-{n}" for n in range(6)]
AFTER_BURST = 0.012  # inside the recorder's linger (20 ms) after the even second's fires
FREEZE = 4.0  # past the lease (3 s): the standby takes over during the freeze
# What the woken process logs for a slot it accepted and found recorded by the next
# leader: now, and before the hand-over existed (then counted as a duplicate).
LATE_LINES = ("the next leader's", "duplicate fire not published")
# What the new leader logs for a slot the woken process recorded first: now, and before
# that order was a hand-over too.
INHERITED_LINES = ("due when this process took over", "duplicate fire not published")


def test_fires_accepted_before_a_freeze_are_handed_over_not_duplicated(tmp_path: Path) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        with fresh_cluster(tmp_path / f"attempt-{attempt}") as cluster:
            if freeze_after_a_burst(cluster, BrokerCounter(cluster.broker_url)):
                print(f"\nattempt {attempt}: the freeze held accepted, unrecorded fires")
                return
    pytest.fail(
        f"no freeze landed between accepting and recording a burst in {ATTEMPTS} attempts "
        "(the machine too slow or too fast for the window); the hand-over was NOT checked"
    )


def freeze_after_a_burst(cluster: Cluster, broker: BrokerCounter) -> bool:
    """One attempt: False if the freeze missed the window; else asserts and returns True."""
    write_jobs(
        cluster.jobs_dir, JOBS, cron="*/2 * * * * *", misfire_grace_seconds=60, coalesce="false"
    )
    daemons = [cluster.start("daemon-a"), cluster.start("daemon-b")]
    wait_until(lambda: cluster.count_runs("published") >= 2 * len(JOBS), timeout=60, what="fires")
    name, epoch = cluster.leader()
    frozen = next(daemon for daemon in daemons if daemon.instance == name)
    burst = (int(time.time()) // 2) * 2 + 4
    time.sleep(max(0.0, burst + AFTER_BURST - time.time()))
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        time.sleep(FREEZE)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_for_next_term(cluster, epoch)
    woken = datetime.now(UTC)
    wait_for_slots_after(
        cluster, woken, 2 * len(JOBS), timeout=30, what="two bursts of the next term"
    )
    late = late_slots(frozen) + [
        line
        for daemon in daemons
        if daemon is not frozen
        for line in daemon.output().splitlines()
        if any(s in line for s in INHERITED_LINES)
    ]
    for daemon in daemons:
        daemon.stop()  # the frozen one has exited 3 (superseded) by itself
    if not late:
        return False
    rows = cluster.ledger("burst-")
    assert sum(row.duplicates for row in rows) == 0, [r for r in rows if r.duplicates]
    assert {row.status for row in rows} == {"published"}, rows
    for job in JOBS:
        slots = [as_utc(row.scheduled_time) for row in rows if row.job_name == job]
        gaps = {later - earlier for earlier, later in pairwise(slots)}
        assert gaps == {timedelta(seconds=2)}, (job, slots)  # none absent, none twice
    assert_broker_matches_ledger(cluster, broker)
    return True


def late_slots(daemon: DaemonProcess) -> list[str]:
    """The woken process's lines about fires it accepted before its freeze and recorded
    after the next leader had."""
    return [line for line in daemon.output().splitlines() if any(s in line for s in LATE_LINES)]
