"""A RabbitMQ node stopped in the middle of a publish window (a PRIVATE node:
tests/faults.py). The publisher writes a whole batch, then waits for the confirms: a
node stopped in between leaves messages written but unconfirmed (some persisted by the
broker, some not). Every slot must then be either confirmed once or re-published, none
lost, and none executed twice: executions are counted by the task itself, in a file,
outside the ledger (fault_tasks.tally); a re-published message the broker had kept is
refused by the worker's guard."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, timedelta
from itertools import pairwise
from typing import Any

import pytest
from faults import PrivateRabbit

from .rig import FaultRig, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.e2e]

# Every third second, 120 slots fall due at once: each burst is one or two publish
# windows (and the worker keeps up with 40 runs a second on a loaded machine).
JOBS = [f"burst-{n:03d}" for n in range(120)]
EVERY = 3
# Stops land this long after a second boundary, when the burst is being published
# (recorded after the recorder's 20 ms linger, then written, then confirmed).
STOP_OFFSETS = (0.04, 0.12)
OUTAGE_SECONDS = 4


@pytest.fixture
def private_rabbit() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as node:
        yield node


def assert_no_slot_missing(rows: list[Any]) -> None:
    """Per job: one row per slot, every EVERY seconds from its first slot to its last."""
    slots: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        slots[row.job_name].append(row.scheduled_time.astimezone(UTC))
    assert sorted(slots) == sorted(JOBS)
    for job, times in slots.items():
        times.sort()
        gaps = [(a, b) for a, b in pairwise(times) if b - a != timedelta(seconds=EVERY)]
        assert not gaps, f"{job}: slots missing or twice between {gaps[:3]}"


def stop_mid_window(rabbit: PrivateRabbit, offset: float) -> None:
    time.sleep(EVERY - time.time() % EVERY + offset)
    rabbit.ctl("stop_app")
    try:
        time.sleep(OUTAGE_SECONDS)
    finally:
        rabbit.ctl("start_app")


def test_a_node_stopped_mid_window_loses_no_slot_and_runs_none_twice(
    pg_url: str, private_redis, private_rabbit: PrivateRabbit, make_rig
) -> None:
    rig: FaultRig = make_rig(
        db_url=pg_url, broker_url=private_rabbit.url(), redis_url=private_redis.url()
    )
    # Room for the backlog of an outage: no slot is skipped as an overlap meanwhile.
    rig.write_jobs(JOBS, cron=f"*/{EVERY} * * * * *", max_concurrent_runs=50)
    daemon = rig.daemon("daemon-a")
    worker = rig.worker("w1", concurrency=4)
    wait_until(lambda: len(rig.executions()) >= 2 * len(JOBS), timeout=90, what="runs")
    for offset in STOP_OFFSETS:
        stop_mid_window(private_rabbit, offset)
        time.sleep(EVERY)
    # The daemon publishes what the outages left unpublished, then stops; the worker
    # runs what is queued.
    wait_until(
        lambda: not rig.rows("SELECT 1 FROM job_runs WHERE status = 'scheduled'"),
        timeout=60,
        what="every slot published",
    )
    assert daemon.stop() == 0
    wait_until(
        lambda: (
            not rig.rows(
                "SELECT 1 FROM job_runs WHERE status IN ('scheduled', 'published', 'started')"
            )
        ),
        timeout=120,
        what="every run final",
    )
    rows = rig.ledger()
    executions = rig.executions()
    retried = rig.rows("SELECT count(*) FROM job_runs WHERE publish_attempts > 1")[0][0]
    print(
        f"\n{len(rows)} slots, {len(executions)} executions, {retried} re-published after "
        f"a failed or unconfirmed publish; {dict(Counter(row.status for row in rows))}"
    )
    assert {row.status for row in rows} == {"succeeded"}
    assert_no_slot_missing(rows)  # none lost
    assert not {run: n for run, n in executions.items() if n > 1}  # none ran twice
    assert set(executions) == {row.id for row in rows}  # every slot ran
    assert retried > 0, "no publish window was cut: the fault missed"
    # Celery logs tracebacks of its own when its connection drops (acks the stopped node
    # could not take: those messages come back, and the guard refuses them); none of
    # ours may fail.
    assert not re.search(r'File "[^"]*/reconciler/', worker.output()), worker.output()[-5000:]
