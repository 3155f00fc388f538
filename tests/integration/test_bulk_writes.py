"""The bulk write paths of store.db.upsert on both databases: many rows (COPY on
PostgreSQL), rows expected to be new that already exist (the savepoint falls back to an
upsert), and the same result as the row-by-row path whichever way they went."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.core.moments import as_utc
from reconciler.store import db
from reconciler.store.db import BULK_ROWS, create_sync_engine, insert_rows, upsert
from reconciler.store.tables import job_events, scheduled_jobs

ROWS = BULK_ROWS + 100
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = create_sync_engine(migrated_db_url)
    yield engine
    engine.dispose()


def row(name: str, task: str = "reconciler.tasks.noop") -> dict[str, object]:
    return {
        "name": name,
        "spec": {"name": name, "task": task, "kwargs": {"big": 2**70, "ratio": 1e16}},
        "spec_hash": "0" * 64,
        "task": task,
        "queue": "default",
        "labels": {},
        "status": "active",
        "source_file": "f.yaml",
        "source_line": 1,
        "revision": None,
        "revision_dirty": False,
        "created_at": NOW,
        "updated_at": NOW,
    }


def write(engine: Engine, rows: list[dict[str, object]], *, expect_new: bool) -> None:
    with engine.begin() as connection:
        upsert(
            connection,
            scheduled_jobs,
            rows,
            key="name",
            keep=frozenset({"created_at"}),
            extra={"generation": scheduled_jobs.c.generation + 1},
            expect_new=expect_new,
        )
        # The transaction is still usable after a fallback (its savepoint rolled back).
        connection.execute(sa.select(1))


def stored(engine: Engine) -> dict[str, tuple[str, int, object]]:
    t = scheduled_jobs
    with engine.connect() as connection:
        query = sa.select(t.c.name, t.c.task, t.c.generation, t.c.spec)
        return {
            name: (task, generation, spec)
            for name, task, generation, spec in connection.execute(query)
        }


@pytest.mark.parametrize("expect_new", [True, False])
def test_many_new_rows_are_written_as_given(engine: Engine, expect_new: bool) -> None:
    rows = [row(f"job-{n:04d}") for n in range(ROWS)]
    write(engine, rows, expect_new=expect_new)
    found = stored(engine)
    assert len(found) == ROWS
    assert found["job-0007"] == ("reconciler.tasks.noop", 1, rows[7]["spec"])


def test_rows_expected_new_that_exist_are_upserted(engine: Engine) -> None:
    write(engine, [row("job-0003", task="reconciler.tasks.old")], expect_new=False)
    rows = [row(f"job-{n:04d}") for n in range(ROWS)]
    write(engine, rows, expect_new=True)  # job-0003 exists: COPY fails, upsert instead
    found = stored(engine)
    assert len(found) == ROWS
    assert found["job-0003"][:2] == ("reconciler.tasks.noop", 2)  # updated, generation + 1
    assert found["job-0004"][:2] == ("reconciler.tasks.noop", 1)


def test_inventory_reads_back_what_was_written(engine: Engine) -> None:
    """read_inventory decodes specs as text (orjson, json for numbers beyond 64 bits)."""
    from reconciler.store.inventory import read_inventory

    rows = [{**row(f"job-{n:04d}"), "spec_hash": f"{n:064d}"} for n in range(3)]
    write(engine, rows, expect_new=True)
    with engine.connect() as connection:
        found = read_inventory(connection)
    assert dict(found["job-0001"].essence) == rows[1]["spec"]
    assert found["job-0001"].essence["kwargs"]["big"] == 2**70  # an int, not a float


def test_many_inserted_rows_are_written_as_given(engine: Engine) -> None:
    """insert_rows: COPY on PostgreSQL for many rows (job events of a bulk update)."""
    events = [
        {
            "job_name": f"job-{n:04d}",
            "at": NOW,
            "action": "update",
            "status": "active",
            "detail": f"~ job-{n:04d} (spec changed: kwargs.ratio)",
            "revision": None if n % 2 else "abc",
        }
        for n in range(ROWS)
    ]
    with engine.begin() as connection:
        insert_rows(connection, job_events, events)
    with engine.connect() as connection:
        found = connection.execute(sa.select(job_events).order_by(job_events.c.id)).mappings()
        got = [{key: value for key, value in item.items() if key != "id"} for item in found]
    for item in got:  # SQLite gives naive datetimes back (UTC)
        item["at"] = as_utc(item["at"])
    assert got == events


def test_many_updates_go_through_copy_as_the_row_by_row_path_writes_them(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Updates of existing rows, many at once (a bulk edit): COPY into a stage, then one
    INSERT ... SELECT ... ON CONFLICT DO UPDATE on PostgreSQL. Every column ends exactly
    as the row-by-row upsert leaves it (created_at kept, generation + 1, the rest
    replaced), with new rows among the updates."""
    later = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)

    def edited(name: str) -> dict[str, object]:
        return {**row(name, task="reconciler.tasks.edited"), "labels": {"team": "x"}}

    def batch(prefix: str, count: int) -> list[dict[str, object]]:
        times = {"created_at": later, "updated_at": later}
        return [{**edited(f"{prefix}-{n:04d}"), **times} for n in range(count)]

    for prefix in ("bulk", "single"):
        write(engine, [row(f"{prefix}-{n:04d}") for n in range(ROWS - 10)], expect_new=True)
    write(engine, batch("bulk", ROWS), expect_new=False)  # COPY (PostgreSQL)
    with monkeypatch.context() as patched:
        patched.setattr(db, "BULK_ROWS", 10**9)  # one executemany
        write(engine, batch("single", ROWS), expect_new=False)
    with engine.connect() as connection:
        rows = {
            item["name"]: {**item, "name": None, "spec": {**item["spec"], "name": None}}
            for item in connection.execute(sa.select(scheduled_jobs)).mappings()
        }
    assert len(rows) == 2 * ROWS
    for n in range(ROWS):
        assert rows[f"bulk-{n:04d}"] == rows[f"single-{n:04d}"]
    updated, added = rows["bulk-0000"], rows[f"bulk-{ROWS - 1:04d}"]
    assert (updated["generation"], updated["task"]) == (2, "reconciler.tasks.edited")
    assert as_utc(updated["created_at"]) == NOW  # kept
    assert as_utc(updated["updated_at"]) == later
    assert (added["generation"], as_utc(added["created_at"])) == (1, later)
