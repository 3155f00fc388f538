"""Exactly once, with two real daemons on one PostgreSQL database (issue 4, "Must show").

Two `reconcile run` processes, 50 jobs firing every second. Only the leader runs
APScheduler; every slot is recorded once in the ledger and published once. The broker's
messages (consumed with kombu, no worker) are compared with the ledger slot by slot.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from .helpers import BrokerCounter, Cluster, as_utc, seconds_between, wait_until, write_jobs

pytestmark = [pytest.mark.services, pytest.mark.slow]

JOBS = [f"every-second-{n:03d}" for n in range(50)]
KILL_PHASE = 0.015
# Both daemons run this long together once firing: 50 slots a second, 3 resync passes
# (every 5 s), a gauge refresh (every 10 s), 30 lease confirmations of each. A standby
# that fires, or a slot lost or fired twice, shows in the first seconds; the 30 s this
# was covered no periodic work of the daemons that 15 s does not.
RUN_SECONDS = 15


def assert_every_slot_present(rows: list, jobs: list[str], *, allowed: set[str]) -> dict:
    """Per job: no second missing between its first and last slot; statuses allowed.
    Returns slots by job."""
    by_job: dict[str, list] = defaultdict(list)
    for row in rows:
        assert row.status in allowed, (row.job_name, row.scheduled_time, row.status, row.reason)
        by_job[row.job_name].append(as_utc(row.scheduled_time))
    assert sorted(by_job) == sorted(jobs)
    for job, slots in by_job.items():
        expected = seconds_between(slots[0], slots[-1])
        missing = sorted(set(expected) - set(slots))
        assert not missing, f"{job}: {len(missing)} slots absent, first {missing[:3]}"
        assert len(slots) == len(set(slots)) == len(expected)
    return by_job


def assert_broker_matches_ledger(cluster: Cluster, broker: BrokerCounter) -> int:
    """Messages consumed == ledger rows 'published', no task id twice. Returns the count."""
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    published = {row.id for row in cluster.ledger() if row.status == "published"}
    twice = [key for key, n in Counter(broker.task_ids).items() if n > 1]
    assert not twice, f"{len(twice)} task ids published more than once"
    assert set(broker.task_ids) == published
    assert len(broker.task_ids) == len(published)
    return len(published)


def test_two_daemons_publish_every_slot_exactly_once(make_cluster, broker) -> None:
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, JOBS)
    # Both start at once on an EMPTY database: both migrate, one leads.
    first, second = cluster.start("daemon-a"), cluster.start("daemon-b")
    wait_until(lambda: cluster.count_runs() >= 50, timeout=40, what="first fires")
    leader = cluster.leader()
    started = time.monotonic()
    while time.monotonic() - started < RUN_SECONDS:
        broker.drain(idle=0.05)  # keep the queues short while it runs
        assert first.alive() and second.alive(), "a daemon died"
        time.sleep(1)
    # Stop the standby first, then the leader: it drains what it fired before exiting.
    standby, leading = (second, first) if leader[0] == "daemon-a" else (first, second)
    assert standby.stop() == 0
    assert leading.stop() == 0
    assert cluster.leader() is None or cluster.leader()[1] == leader[1], "no failover expected"

    rows = cluster.ledger()
    by_job = assert_every_slot_present(rows, JOBS, allowed={"published"})
    assert sum(row.duplicates for row in rows) == 0  # the standby never fired
    count = assert_broker_matches_ledger(cluster, broker)
    assert count == len(rows) >= 50 * (RUN_SECONDS - 2)
    # Every job fired over the same span: none started late or stopped early.
    spans = {(slots[0], slots[-1]) for slots in by_job.values()}
    firsts, lasts = {s[0] for s in spans}, {s[1] for s in spans}
    assert max(firsts) - min(firsts) <= timedelta(seconds=2)
    assert max(lasts) - min(lasts) <= timedelta(seconds=1)
    print(f"\n{count} slots over {len(by_job)} jobs, each published once")


def test_sigkill_of_the_leader_hands_over_without_duplicates_or_gaps(make_cluster, broker) -> None:
    jobs = JOBS[:20]
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, jobs)
    first, second = cluster.start("daemon-a"), cluster.start("daemon-b")
    wait_until(lambda: cluster.count_runs() >= 20 * 5, timeout=40, what="5 s of fires")
    name, epoch = cluster.leader()
    leading, standby = (first, second) if name == "daemon-a" else (second, first)
    # 15 ms after a second boundary: while the leader is firing that second's slots (the
    # scheduler has moved next_run_time on, the pipeline is recording them). Before the
    # fix in OwnedJobStore.rewind_lost_slots this lost a slot of most jobs, often.
    time.sleep(1 - time.time() % 1 + KILL_PHASE)
    killed_at = datetime.now(UTC)
    t_kill = time.monotonic()
    leading.kill()
    new = wait_until(
        lambda: (lead := cluster.leader()) and lead[1] > epoch and lead,
        timeout=10,
        interval=0.02,
        what="takeover",
    )
    takeover = time.monotonic() - t_kill
    wait_until(
        lambda: cluster.scalar(
            "SELECT count(*) FROM job_runs WHERE fired_at > :t AND status = 'published'",
            t=killed_at,
        ),
        timeout=10,
        interval=0.02,
        what="first fire of the new leader",
    )
    first_fire = time.monotonic() - t_kill
    assert new[0] == standby.instance
    wait_until(
        lambda: (
            cluster.scalar("SELECT max(scheduled_time) FROM job_runs")
            >= killed_at + timedelta(seconds=8)
        ),
        timeout=20,
        what="8 s of fires after the kill",
    )
    assert standby.stop() == 0

    rows = cluster.ledger()
    statuses = Counter((row.status, row.reason) for row in rows)
    # Slots the dead leader recorded but had not marked published are re-published by the
    # new leader's retrier at once (its first pass makes every 'scheduled' row due, issue
    # 17): same task id, which the worker runs once. So a message may be sent twice, only
    # for a slot the dead leader fired. Everything else is published, or missed with a
    # reason (coalesced: slots due while nobody led).
    assert_every_slot_present(rows, jobs, allowed={"published", "missed", "scheduled"})
    assert {reason for status, reason in statuses if status == "missed"} <= {"coalesced", "misfire"}
    assert sum(row.duplicates for row in rows) == 0
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    twice = [key for key, n in Counter(broker.task_ids).items() if n > 1]
    fired_by_the_dead = {row.id for row in rows if as_utc(row.fired_at) <= killed_at}
    assert set(twice) <= fired_by_the_dead, "a slot of the new leader published twice"
    published = {row.id for row in rows if row.status == "published"}
    scheduled = {row.id for row in rows if row.status == "scheduled"}
    consumed = set(broker.task_ids)
    assert published <= consumed  # none lost
    assert consumed - published <= scheduled  # published by the dead leader, not marked
    rewound = standby.output().count("made due again")
    print(
        f"\ntakeover {takeover:.2f} s, first fire of the new leader {first_fire:.2f} s after "
        f"the kill; ledger {dict(statuses)}; {len(consumed)} messages, "
        f"{len(consumed - published)} of them published by the dead leader but not marked; "
        f"lost slots made due again: {'yes' if rewound else 'none lost'}"
    )
    assert takeover < 5
    assert first_fire < 5


def test_a_cold_restart_coalesces_or_catches_up_the_missed_window(make_cluster, broker) -> None:
    """Every replica down (kill -9 of the only one), then a new one: the slots of the
    downtime are all in the ledger. coalesce: true (default) = ONE fire for the newest
    slot, the others 'missed' (coalesced); coalesce: false = each fired, at most
    RECONCILER_MAX_CATCH_UP_RUNS (2 here) of them, the older ones 'missed'
    (catch_up_limit). No slot absent, none published twice."""
    cluster = make_cluster(max_catch_up_runs="2")
    write_jobs(cluster.jobs_dir, ["coalescing"])
    write_jobs(cluster.jobs_dir, ["catching-up"], coalesce="false")
    first = cluster.start("daemon-a")
    wait_until(lambda: cluster.count_runs("published") >= 2 * 3, timeout=40, what="fires")
    first.kill()
    killed_at = datetime.now(UTC)
    # 4 s with no daemon at all (the downtime under test, not a synchronisation).
    wait_until(lambda: datetime.now(UTC) >= killed_at + timedelta(seconds=4), timeout=5)
    second = cluster.start("daemon-b")
    wait_until(
        lambda: (
            cluster.scalar("SELECT max(scheduled_time) FROM job_runs")
            >= killed_at + timedelta(seconds=3)
        ),
        timeout=40,
        what="fires after the restart",
    )
    assert second.stop() == 0
    rows = cluster.ledger()
    assert_every_slot_present(rows, ["coalescing", "catching-up"], allowed={"published", "missed"})
    reasons = Counter((row.job_name, row.status, row.reason) for row in rows)
    assert reasons[("coalescing", "missed", "coalesced")] >= 1
    assert reasons[("catching-up", "missed", "catch_up_limit")] >= 1
    assert {reason for _, status, reason in reasons if status == "missed"} <= {
        "coalesced",
        "catch_up_limit",
    }
    assert sum(row.duplicates for row in rows) == 0
    count = assert_broker_matches_ledger(cluster, broker)
    print(f"\ncold restart: {dict(reasons)}; {count} messages, each once")
