"""SIGTERM: the leader stops cleanly (what it fired is recorded AND published, the lock
is released, its instance row says 'stopped') and the standby leads within 2 s."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from .helpers import wait_until, write_jobs
from .test_exactly_once import assert_every_slot_present

pytestmark = [pytest.mark.services, pytest.mark.slow]

JOBS = [f"graceful-{n:02d}" for n in range(20)]


def test_sigterm_hands_over_at_once_and_loses_nothing(make_cluster, broker) -> None:
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, JOBS)
    first, second = cluster.start("daemon-a"), cluster.start("daemon-b")
    wait_until(lambda: cluster.count_runs() >= 20 * 3, timeout=40, what="3 s of fires")
    name, epoch = cluster.leader()
    leading, standby = (first, second) if name == "daemon-a" else (second, first)

    # Just after a second boundary: that second's 20 fires are being recorded/published.
    time.sleep(1 - time.time() % 1 + 0.01)
    signalled_at = datetime.now(UTC)
    t_term = time.monotonic()
    assert leading.stop(timeout=15) == 0
    exited = time.monotonic() - t_term
    new = wait_until(
        lambda: (lead := cluster.leader()) and lead[1] > epoch and lead,
        timeout=5,
        interval=0.02,
        what="takeover",
    )
    takeover = time.monotonic() - t_term
    assert new[0] == standby.instance
    # Everything the old leader recorded was published before it let go of the lock.
    left = cluster.rows(
        "SELECT count(*) FROM job_runs WHERE status <> 'published' AND fired_at <= :t",
        t=signalled_at,
    )[0][0]
    assert left == 0
    roles = dict(cluster.rows("SELECT instance, role FROM reconciler_instances"))
    assert roles[leading.instance] == "stopped"

    wait_until(
        lambda: (
            cluster.scalar("SELECT count(*) FROM job_runs WHERE fired_at > :t", t=signalled_at)
            >= 20 * 3
        ),
        timeout=15,
        what="3 s of fires by the new leader",
    )
    assert standby.stop() == 0
    rows = cluster.ledger()
    assert_every_slot_present(rows, JOBS, allowed={"published"})
    assert sum(row.duplicates for row in rows) == 0
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    assert not [key for key, n in Counter(broker.task_ids).items() if n > 1]
    assert set(broker.task_ids) == {row.id for row in rows}
    print(
        f"\nSIGTERM -> leader exited {exited:.2f} s, standby leading {takeover:.2f} s; "
        f"{len(rows)} slots, each published once"
    )
    assert takeover < 2.0
