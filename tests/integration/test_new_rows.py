"""New scheduler rows made where there is no connection (store.scheduler_rows.
stream_new_rows, binary COPY data encoded by store.binary_copy; a cold apply makes them
in a forked child, which sends them as it makes them): written, they are exactly the
rows `upsert_scheduler_rows` writes, records included, however they are cut into parts;
rows of which one exists already are refused whole, and the upsert follows; a stream
that breaks, or a COPY the server refuses, half-way writes nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.core.state import SchedulerJob, scheduler_job
from reconciler.core.vocabulary import Trigger
from reconciler.engine import apply as apply_module
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import Settings
from reconciler.spec import parallel
from reconciler.spec.model import JobSpec
from reconciler.store import scheduler_rows
from reconciler.store.binary_copy import encode_rows
from reconciler.store.db import BULK_ROWS, create_sync_engine
from reconciler.store.migrate import upgrade_database
from reconciler.store.scheduler_rows import (
    JOB_ROWS,
    copy_new_rows,
    stream_new_rows,
    upsert_scheduler_rows,
)
from tests.alone import fork_here
from tests.conftest import fresh_database

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


@pytest.mark.parametrize("every", [1, 7, 40, 1000])
def test_new_rows_written_are_the_rows_upserted(engine: Engine, every: int) -> None:
    rows = jobs()
    with engine.begin() as connection:
        upsert_scheduler_rows(connection, rows, expect_new=True, made_for=made_for(rows))
    upserted = tables(engine)
    clear(engine)
    with engine.begin() as connection:
        assert copy_new_rows(connection, stream_new_rows(rows, made_for(rows), every=every))
    assert tables(engine) == upserted
    assert len(upserted["jobs"]) == len(upserted["records"]) == 40
    assert sum(1 for _, moment, _ in upserted["jobs"] if moment is None) == 8


def test_the_parts_joined_are_the_whole_data() -> None:
    rows = jobs()
    whole = b"".join(data for channel, data in stream_new_rows(rows, made_for(rows), every=100))
    for every in (1, 3, 39, 40):
        parts = list(stream_new_rows(rows, made_for(rows), every=every))
        assert len([c for c, _ in parts if c == JOB_ROWS]) == 40 // every + 1
        assert b"".join(data for _, data in parts) == whole


@pytest.mark.parametrize("every", [5, 1000])
def test_rows_of_which_one_exists_are_refused_whole(engine: Engine, every: int) -> None:
    """Also when the row that exists comes late in the stream: the server refuses it
    after taking the parts before it, and nothing of them is written."""
    rows = jobs()
    with engine.begin() as connection:
        upsert_scheduler_rows(connection, rows[33:34], made_for=made_for(rows))
    before = tables(engine)
    with engine.begin() as connection:
        assert not copy_new_rows(connection, stream_new_rows(rows, made_for(rows), every=every))
        connection.execute(sa.select(1))  # the transaction goes on: the savepoint rolled back
    assert tables(engine) == before


def test_rows_without_a_basis_are_not_encoded() -> None:
    rows = jobs()
    vouched = made_for(rows)
    del vouched[rows[5][0].id]
    with pytest.raises(ValueError, match="no basis"):  # upserted: the record is deleted
        list(stream_new_rows(rows, vouched))


def test_a_stream_broken_half_way_writes_nothing(engine: Engine) -> None:
    """The parts sent before the break are discarded with the aborted COPY: the
    transaction goes on without them, its own earlier writes kept."""
    rows = jobs()

    def broken() -> Any:
        for number, part in enumerate(stream_new_rows(rows, made_for(rows), every=4)):
            if number == 3:
                raise RuntimeError("the child died")
            yield part

    with engine.begin() as connection:
        upsert_scheduler_rows(connection, rows[:1], made_for=made_for(rows))
        with pytest.raises(RuntimeError, match="the child died"):
            copy_new_rows(connection, broken())
    found = tables(engine)
    assert [row[0] for row in found["jobs"]] == [rows[0][0].id]
    assert [row[0] for row in found["records"]] == [rows[0][0].id]


def test_a_copy_the_server_refuses_half_way_writes_nothing(engine: Engine) -> None:
    """A part the server cannot read (here: cut short) fails the COPY with the
    server's error, raised; nothing of the stream is written."""
    rows = jobs()

    def garbled() -> Any:
        for number, (channel, data) in enumerate(stream_new_rows(rows, made_for(rows), every=4)):
            yield channel, data[:-3] if number == 3 else data

    with (
        pytest.raises(psycopg.DataError, match="COPY apscheduler_jobs"),
        engine.begin() as connection,
    ):
        copy_new_rows(connection, garbled())
    assert tables(engine) == {"jobs": [], "records": []}


def test_what_postgresql_text_cannot_hold_is_refused() -> None:
    assert encode_rows([("a", 1.5, b"\x00", None)])  # bytes may hold NUL, text may not
    with pytest.raises(ValueError, match="NUL"):
        encode_rows([("a\x00b",)])
    with pytest.raises(ValueError, match="int"):
        encode_rows([(1,)])


def cold_apply(root: Path, url: str) -> dict[str, list[tuple[Any, ...]]]:
    """A one-shot apply of `root` on an empty database; every table it writes."""
    upgrade_database(url)
    engine = create_sync_engine(url)
    try:
        settings = Settings(database_url=url, jobs_dir=root)
        result = reconcile_once(engine, settings, trigger=Trigger.CLI, clock=lambda: NOW)
        assert not result.plan.quarantined
        found = tables(engine)
        with engine.connect() as connection:
            for table in ("scheduled_jobs", "job_files"):
                query = f"SELECT * FROM {table} ORDER BY 1"
                found[table] = [tuple(row) for row in connection.execute(sa.text(query))]
    finally:
        engine.dispose()
    return found


def write_jobs(root: Path) -> None:
    for number in range(BULK_ROWS // 3 + 10):
        documents = [
            f"name: job-{number}-{slot}\ntask: reconciler.tasks.example_task\n"
            f'schedule: {{cron: "{slot} 3 * * *"}}\nkwargs: {{data: {{n: {number}}}}}\n'
            for slot in range(3)
        ]
        (root / f"f{number:04d}.yaml").write_text("---\n".join(documents))


@pytest.mark.parametrize("where", ["beside", "copy", "inventory"])
def test_a_failure_while_the_rows_are_sent_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, where: str
) -> None:
    """The child's rows, after the added jobs' inventory rows, are sent by a thread
    while the pass does the caller's `beside` work (reconcile_once's `planned`): a
    failure on either side fails the pass, once the thread is joined, and nothing is
    written."""
    if not fork_here(request):
        return  # it ran alone, in a fresh process, and passed there
    write_jobs(tmp_path)

    def planned(plan: object) -> None:
        if where == "beside":
            raise RuntimeError("failed beside")

    def copy_fails(*args: object) -> bool:
        raise RuntimeError("failed to copy")

    if where == "copy":
        monkeypatch.setattr(apply_module, "copy_new_rows", copy_fails)
    if where == "inventory":
        monkeypatch.setattr(apply_module, "copy_new_inventory", copy_fails)
    with fresh_database() as url:
        upgrade_database(url)
        engine = create_sync_engine(url)
        try:
            settings = Settings(database_url=url, jobs_dir=tmp_path)
            failure = "failed beside" if where == "beside" else "failed to copy"
            with pytest.raises(RuntimeError, match=failure):
                reconcile_once(
                    engine, settings, trigger=Trigger.CLI, clock=lambda: NOW, planned=planned
                )
            assert threading.active_count() == 1  # the thread was joined
            assert tables(engine) == {"jobs": [], "records": []}
            with engine.connect() as connection:
                query = "SELECT count(*) FROM scheduled_jobs"
                assert connection.execute(sa.text(query)).scalar() == 0
        finally:
            engine.dispose()


@pytest.mark.parametrize("how", ["fails", "dies mid-stream"])
def test_a_cold_apply_whose_rows_child_fails_writes_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, how: str
) -> None:
    """The added jobs' rows are made by a forked child (engine.apply) and COPYed as it
    sends them; a child that fails before sending, or dies after sending part of them
    (the server has taken those), costs only time: the COPY is aborted, and the same
    rows are then made by the pass itself."""
    if not fork_here(request):
        return  # it ran alone, in a fresh process, and passed there
    write_jobs(tmp_path)
    started: list[object] = []
    start = parallel.Stream.start

    def spied(*args: Any) -> parallel.Stream | None:
        child = start(*args)
        started.append(child)
        return child

    monkeypatch.setattr(parallel.Stream, "start", spied)
    with fresh_database() as url:
        healthy = cold_apply(tmp_path, url)
    assert len(started) == 1 and started[0] is not None  # the rows were made by a child
    made = apply_module._new_rows
    died = tmp_path / "died"

    def failing(*args: Any) -> Iterator[tuple[int, bytes]]:
        if how == "fails":
            raise RuntimeError("the child fails")
        for number, (channel, data) in enumerate(made(*args)):
            if number == 2:
                died.write_text(str(channel))
                os._exit(1)  # a child dying half-way, as SIGKILL would end it
            yield channel, data

    monkeypatch.setattr(apply_module, "_new_rows", failing)
    monkeypatch.setattr(scheduler_rows, "STREAM_ROWS", 100)  # several parts at this size
    with fresh_database() as url:
        assert cold_apply(tmp_path, url) == healthy
    assert len(started) == 2 and started[1] is not None
    if how == "dies mid-stream":
        assert died.read_text() == str(JOB_ROWS)  # after two parts of the rows, not all
    assert len(healthy["jobs"]) == len(healthy["records"]) == 3 * (BULK_ROWS // 3 + 10)
