"""The change counts (store.change_counts, migration 0007) move with every committed
write to `scheduled_jobs` or `apscheduler_jobs`, whoever makes it, and with nothing
else; they are refused where the triggers are not there to keep them; the migration
goes up and down. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from reconciler.store.change_counts import (
    ChangeCounts,
    compact_change_counts,
    read_change_counts,
    written_here,
)
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database

pytestmark = pytest.mark.services

NOW = datetime(2026, 12, 2, tzinfo=UTC)
INVENTORY_ROW = (
    "INSERT INTO scheduled_jobs (name, spec, spec_hash, task, queue, labels, status,"
    " source_file, source_line, created_at, updated_at) VALUES (:name, '{}', :hash,"
    " 'reconciler.tasks.noop', 'default', '{}', 'active', 'a.yaml', 1, :now, :now)"
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    upgrade_database(db_url)
    engine = create_sync_engine(db_url)
    yield engine
    engine.dispose()


def counts(engine: sa.Engine) -> ChangeCounts | None:
    with engine.connect() as connection:
        return read_change_counts(connection)


def execute(engine: sa.Engine, *statements: str, **params: object) -> None:
    """The statements in one transaction of their own (another process's, for the
    reader)."""
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement), params)


def moved(before: ChangeCounts | None, after: ChangeCounts | None) -> tuple[bool, bool]:
    assert before is not None and after is not None
    return before.inventory != after.inventory, before.scheduler != after.scheduler


def test_every_write_moves_the_count_of_its_table_only(engine: sa.Engine) -> None:
    scheduler_writes = [
        "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('x', 1, 'x')",
        "UPDATE apscheduler_jobs SET next_run_time = next_run_time WHERE id = 'x'",  # same values
        "UPDATE apscheduler_jobs SET job_state = 'y' WHERE id = 'x'",  # drift
        "DELETE FROM apscheduler_jobs WHERE id = 'x'",
    ]
    inventory_writes = [
        INVENTORY_ROW,
        "UPDATE scheduled_jobs SET status = 'paused' WHERE name = :name",
        "DELETE FROM scheduled_jobs WHERE name = :name",
    ]
    for statement in scheduler_writes:
        before = counts(engine)
        execute(engine, statement)
        assert moved(before, counts(engine)) == (False, True), statement
    for statement in inventory_writes:
        before = counts(engine)
        execute(engine, statement, name="a", hash="0" * 64, now=NOW)
        assert moved(before, counts(engine)) == (True, False), statement


def test_what_is_not_committed_moves_nothing(engine: sa.Engine) -> None:
    before = counts(engine)
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(sa.text("DELETE FROM apscheduler_jobs"))
        connection.execute(sa.text(INVENTORY_ROW), {"name": "a", "hash": "0" * 64, "now": NOW})
        # Not yet committed: another connection sees nothing moved.
        assert counts(engine) == before
        transaction.rollback()
    assert counts(engine) == before
    execute(engine, "SELECT count(*) FROM apscheduler_jobs")  # a read is no write
    assert counts(engine) == before


def test_a_transaction_sees_what_it_wrote_itself(engine: sa.Engine) -> None:
    with engine.connect() as connection, connection.begin():
        before = read_change_counts(connection)
        assert before is not None
        for _ in range(3):  # three statements, one transaction
            connection.execute(sa.text("UPDATE apscheduler_jobs SET next_run_time = 1"))
        tables = written_here(connection)
        if connection.dialect.name == "postgresql":
            assert tables == frozenset({"apscheduler_jobs"})
            # What the pass computes is what every other snapshot will read.
            assert read_change_counts(connection) == before.plus(tables)
        else:
            assert tables is None  # SQLite: a pass that wrote tracks nothing
    if engine.dialect.name == "postgresql":
        assert counts(engine) == before.plus(frozenset({"apscheduler_jobs"}))


@pytest.mark.parametrize(
    "breakage",
    [
        "DROP TABLE apscheduler_jobs",  # then made again as APScheduler's start() does
        "DROP TRIGGER {trigger}",
        "ALTER TABLE apscheduler_jobs DISABLE TRIGGER count_changes",
    ],
)
def test_counts_are_refused_without_their_triggers(engine: sa.Engine, breakage: str) -> None:
    postgres = engine.dialect.name == "postgresql"
    if "DISABLE" in breakage and not postgres:
        pytest.skip("SQLite cannot disable a trigger")
    assert counts(engine) is not None
    trigger = (
        "count_changes ON apscheduler_jobs" if postgres else "count_changes_apscheduler_jobs_update"
    )
    execute(engine, breakage.format(trigger=trigger))
    if breakage.startswith("DROP TABLE"):
        from reconciler.store.tables import apscheduler_jobs

        with engine.begin() as connection:
            apscheduler_jobs.create(connection)
    assert counts(engine) is None


def test_counted_under_replication_role_replica(engine: sa.Engine) -> None:
    """A restore or a logical replica writes with session_replication_role = replica,
    under which ordinary triggers do not fire: ours fires ALWAYS."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    before = counts(engine)
    execute(
        engine,
        "SET LOCAL session_replication_role = replica",
        "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('x', 1, 'x')",
    )
    assert moved(before, counts(engine)) == (False, True)
    before = counts(engine)
    execute(engine, "TRUNCATE apscheduler_jobs")
    assert moved(before, counts(engine)) == (False, True)


def test_compaction_keeps_the_counts(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps one row per table")
    for number in range(250):
        execute(engine, f"UPDATE apscheduler_jobs SET next_run_time = {number}")
        if number % 50 == 0:
            execute(engine, "UPDATE scheduled_jobs SET status = status")
    before = counts(engine)
    with engine.begin() as connection:
        assert compact_change_counts(connection)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM table_changes")).scalar()
    assert rows == 2
    assert counts(engine) == before
    execute(engine, "UPDATE scheduled_jobs SET status = status")
    assert moved(before, counts(engine)) == (True, False)


def test_the_migration_goes_down_and_up_again(engine: sa.Engine, db_url: str) -> None:
    from alembic import command

    from reconciler.store.migrate import alembic_config

    with engine.begin() as connection:
        config = alembic_config(db_url)
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    assert counts(engine) is None
    execute(  # the tables are written as before, without the triggers
        engine, "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('x', 1, 'x')"
    )
    with engine.connect() as connection:
        left = sa.inspect(connection).get_table_names()
    assert "table_changes" not in left
    upgrade_database(db_url)
    before = counts(engine)
    assert before is not None
    execute(engine, "DELETE FROM apscheduler_jobs WHERE id = 'x'")
    assert moved(before, counts(engine)) == (False, True)
