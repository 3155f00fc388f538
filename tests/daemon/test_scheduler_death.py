"""A leader whose APScheduler thread dies gives the lead up and exits 1; a standby fires.

APScheduler 3 calls the job store's `remove_job` (after a one-off job's last fire)
outside any try in its pass: a database error there ends the scheduler's thread without
a word, and the process used to keep the lock, turn its loop (healthcheck green) and
fire nothing for good. The fault is real: PostgreSQL refuses every DELETE on the
scheduler's table (a trigger on this test's own database), so removing the fired
one-off job raises in the scheduler's thread. Only this test's database is touched."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from .helpers import as_utc, wait_for_next_term, wait_until, write_jobs
from .test_first_slot import wait_for_fires_since

pytestmark = [pytest.mark.services, pytest.mark.slow]

REFUSE_DELETES = """
CREATE FUNCTION refuse_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'deletes refused (test fault)'; END $$;
CREATE TRIGGER refuse_deletes BEFORE DELETE ON apscheduler_jobs
FOR EACH ROW EXECUTE FUNCTION refuse_deletes();
"""


def test_a_dead_scheduler_thread_gives_the_lead_to_a_standby(make_cluster, broker) -> None:
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, ["warm"])
    first = cluster.start("daemon-a")
    wait_until(lambda: cluster.count_runs("published") >= 3, timeout=60, what="warm fires")
    _, epoch = cluster.leader()
    with cluster.engine.begin() as connection:
        connection.execute(sa.text(REFUSE_DELETES))
    slot = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    (cluster.jobs_dir / "once.yaml").write_text(
        f'name: once\ntask: reconciler.tasks.noop\nschedule: {{at: "{slot.isoformat()}"}}\n'
    )
    assert first.process is not None
    code = first.process.wait(timeout=40)  # the one-off fires at `slot`; its DELETE fails
    output = first.output()
    assert code == 1, output[-3000:]
    assert "Exception in thread APScheduler" in output, output[-3000:]
    assert "giving up the leadership" in output, output[-3000:]
    assert "once" in {row.job_name for row in cluster.ledger()}  # fired before it died

    with cluster.engine.begin() as connection:  # the database healthy again
        connection.execute(sa.text("DROP TRIGGER refuse_deletes ON apscheduler_jobs"))
    restarted = cluster.start("daemon-b")  # what a supervisor does
    wait_for_next_term(cluster, epoch)
    wait_for_fires_since(cluster, datetime.now(UTC), what="the next leader")
    # The one-off's row was left due (its DELETE refused): the next leader finds its slot
    # in the ledger (refused, nothing published again) and removes the job.
    wait_until(
        lambda: not cluster.rows("SELECT 1 FROM apscheduler_jobs WHERE id = 'once'"),
        timeout=20,
        what="the one-off job removed",
    )
    assert restarted.stop() == 0
    rows = [row for row in cluster.ledger() if row.job_name == "once"]
    assert [(as_utc(row.scheduled_time), row.status) for row in rows] == [(slot, "published")]
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    assert Counter(broker.task_ids)[rows[0].id] == 1
