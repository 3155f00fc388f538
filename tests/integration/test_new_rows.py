"""New scheduler rows made where there is no connection (store.scheduler_rows.NewRows,
binary COPY data encoded by store.binary_copy; a cold apply makes them in a forked
child): written, they are exactly the rows `upsert_scheduler_rows` writes, records
included; rows of which one exists already are refused whole, and the upsert follows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.core.state import SchedulerJob, scheduler_job
from reconciler.spec.model import JobSpec
from reconciler.store.binary_copy import encode_rows
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database
from reconciler.store.scheduler_rows import (
    copy_new_rows,
    encode_new_rows,
    upsert_scheduler_rows,
)

pytestmark = pytest.mark.services

NOW = datetime(2026, 12, 2, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    upgrade_database(pg_url)
    engine = create_sync_engine(pg_url)
    yield engine
    engine.dispose()


def jobs() -> list[tuple[SchedulerJob, datetime | None]]:
    """Varied rows: paused rows (no next run time), revisions or none, floats and long
    texts beyond ASCII in the arguments."""
    made = []
    for n in range(40):
        spec = JobSpec.model_validate(
            {
                "name": f"job-{n:02d}",
                "task": "reconciler.tasks.example_task",
                "schedule": {"cron": f"{n} 3 * * *"} if n % 2 else {"interval": {"minutes": n + 1}},
                "timezone": "Europe/Berlin",
                "kwargs": {"n": n, "ratio": n / 3, "text": "xü€" * (n * 50)},
            }
        )
        job = scheduler_job(spec, spec_hash=f"{n:064x}", revision=None if n % 3 else "abc")
        made.append((job, None if n % 5 == 0 else NOW.replace(minute=n)))
    return made


def made_for(rows: list[tuple[SchedulerJob, datetime | None]]) -> dict[str, Any]:
    return {job.id: (f"{n:064x}", None if n % 3 else "abc") for n, (job, _) in enumerate(rows)}


def tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(sa.text(query))]
            for table, query in (
                ("jobs", "SELECT id, next_run_time, job_state FROM apscheduler_jobs ORDER BY id"),
                ("records", "SELECT * FROM written_scheduler_rows ORDER BY id"),
            )
        }


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM apscheduler_jobs"))
        connection.execute(sa.text("DELETE FROM written_scheduler_rows"))


def test_new_rows_written_are_the_rows_upserted(engine: Engine) -> None:
    rows = jobs()
    with engine.begin() as connection:
        upsert_scheduler_rows(connection, rows, expect_new=True, made_for=made_for(rows))
    upserted = tables(engine)
    clear(engine)
    made = encode_new_rows(rows, made_for(rows))
    assert made is not None
    with engine.begin() as connection:
        assert copy_new_rows(connection, made)
    assert tables(engine) == upserted
    assert len(upserted["jobs"]) == len(upserted["records"]) == 40
    assert sum(1 for _, moment, _ in upserted["jobs"] if moment is None) == 8


def test_rows_of_which_one_exists_are_refused_whole(engine: Engine) -> None:
    rows = jobs()
    with engine.begin() as connection:
        upsert_scheduler_rows(connection, rows[3:4], made_for=made_for(rows))
    before = tables(engine)
    made = encode_new_rows(rows, made_for(rows))
    assert made is not None
    with engine.begin() as connection:
        assert not copy_new_rows(connection, made)
        connection.execute(sa.select(1))  # the transaction goes on: the savepoint rolled back
    assert tables(engine) == before


def test_rows_without_a_basis_are_not_encoded() -> None:
    rows = jobs()
    vouched = made_for(rows)
    del vouched[rows[5][0].id]
    assert encode_new_rows(rows, vouched) is None  # upserted instead: the record is deleted


def test_what_postgresql_text_cannot_hold_is_refused() -> None:
    assert encode_rows([("a", 1.5, b"\x00", None)])  # bytes may hold NUL, text may not
    with pytest.raises(ValueError, match="NUL"):
        encode_rows([("a\x00b",)])
    with pytest.raises(ValueError, match="int"):
        encode_rows([(1,)])
