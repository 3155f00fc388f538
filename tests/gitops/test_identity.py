"""Identity across moves and renames on PostgreSQL (issue 12, item 5), through the
engine in process: a moved file only updates `source`; `previous_names` renames a job
keeping its inventory row, its exact next fire and its ledger; a remove + add of the
same spec gets a hint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from reconciler.core.diff import FieldDiffer
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database

from .cli import Workspace, job

pytestmark = [pytest.mark.services]

# A next fire apply would never compute itself: kept only if carried over.
MARKED = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()


def test_moves_and_renames_carry_the_job_over(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    upgrade_database(ws.db_url)
    engine = create_sync_engine(ws.db_url)
    settings = Settings(database_url=ws.db_url, jobs_dir=ws.jobs_dir)

    def apply():
        return reconcile_once(engine, settings, trigger="cli").plan

    def one(sql: str, **params: object) -> object:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    try:
        ws.write("ops/tick.yaml", job("tick"))
        apply()
        created = one("SELECT created_at FROM scheduled_jobs")
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE apscheduler_jobs SET next_run_time = :t"), {"t": MARKED}
            )
            connection.execute(
                sa.text(
                    "INSERT INTO job_runs (id, job_name, scheduled_time, status, task, queue, "
                    "idempotency_key, updated_at) VALUES ('run-1', 'tick', now(), 'succeeded', "
                    "'reconciler.tasks.noop', 'default', 'run-1', now())"
                )
            )

        (ws.jobs_dir / "ops" / "tick.yaml").rename(ws.jobs_dir / "tick.yaml")
        plan = apply()
        [change] = plan.changes
        assert (
            change.action,
            [
                (d.path, d.before, d.after)
                for d in FieldDiffer().between(change.before, change.after)
            ],
        ) == (
            "update",
            [("source", "ops/tick.yaml", "tick.yaml")],
        )
        assert not change.fires_before and not change.fires_after  # no schedule effect
        assert one("SELECT next_run_time FROM apscheduler_jobs") == MARKED
        assert one("SELECT source_file FROM scheduled_jobs") == "tick.yaml"

        ws.write("tick.yaml", job("tock", previous_names="[tick]"))
        plan = apply()
        [change] = plan.changes
        assert (change.action, change.job, change.renamed_from) == ("rename", "tock", "tick")
        assert one("SELECT string_agg(name, ',') FROM scheduled_jobs") == "tock"
        assert one("SELECT string_agg(id, ',') FROM apscheduler_jobs") == "tock"
        assert one("SELECT next_run_time FROM apscheduler_jobs") == MARKED
        assert one("SELECT job_name FROM job_runs WHERE id = 'run-1'") == "tock"
        assert one("SELECT created_at FROM scheduled_jobs") == created
        assert not apply().has_changes  # converged; previous_names may stay in the file

        ws.write("tick.yaml", job("tack"))  # no previous_names: remove + add, with a hint
        plan = reconcile_once(engine, settings, trigger="cli", apply=False).plan
        assert [c.action for c in plan.changes] == ["add", "remove"]
        assert plan.hints and "previous_names: [tock]" in plan.hints[0]
    finally:
        engine.dispose()
