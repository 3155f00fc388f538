"""New inventory rows as binary COPY data made here (store.inventory.encode_new_inventory;
a cold apply makes them while its forked child makes the scheduler rows, and a thread
sends them beside the plan's render): written, they are exactly the rows psycopg's own
COPY of `upsert_inventory` writes; rows of which one name exists already are refused
whole, and the upsert follows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler.core.plan import Target, make_plan
from reconciler.core.state import ActualState
from reconciler.core.vocabulary import JobStatus, Trigger
from reconciler.engine import apply as apply_module
from reconciler.engine.apply import apply_plan
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import BULK_ROWS, create_sync_engine
from reconciler.store.inventory import (
    copy_new_inventory,
    encode_new_inventory,
    upsert_inventory,
)
from reconciler.store.migrate import upgrade_database
from tests.alone import fork_here
from tests.conftest import fresh_database
from tests.unit.core.planning import desired, spec

pytestmark = pytest.mark.services

NOW = datetime(2026, 12, 3, 8, 15, 0, 654321, tzinfo=UTC)
STATUSES = (JobStatus.ACTIVE, JobStatus.PAUSED, JobStatus.COMPLETED)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    upgrade_database(pg_url)
    engine = create_sync_engine(pg_url)
    yield engine
    engine.dispose()


def targets(count: int = 30) -> list[Target]:
    """Varied rows: texts beyond ASCII and beyond 4 KB (a length word not made in
    advance), floats and integers beyond 64 bits in the arguments (JSON written by
    json, not orjson), labels or none, every status, revisions or none, dirty or not."""
    specs = [
        spec(
            f"job-{n:02d}",
            queue="default" if n % 2 else "bulk",
            kwargs={"n": n, "ratio": n / 7, "text": "xü€😀" * (n * 40), "big": 2**70 + n}
            if n % 4 == 0
            else {"n": n, "ratio": n / 7, "text": "xü€😀" * (n * 40)},
            labels={"team": f"t{n % 3}", "note": "ß" * n} if n % 5 else {},
            description="d" * (n * 200),
        )
        for n in range(count)
    ]
    plan = make_plan(desired(*specs), ActualState(inventory={}, scheduler={}), now=NOW)
    made = []
    for n, change in enumerate(plan.changes):
        assert change.target is not None
        made.append(
            dataclasses.replace(
                change.target,
                source=f"folder/file-{n // 4}.yaml",
                line=1 + 13 * n,
                status=STATUSES[n % 3],
                revision=None if n % 3 == 0 else f"{n:040x}",
                revision_dirty=n % 2 == 0,
            )
        )
    return made


def inventory(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        query = "SELECT * FROM scheduled_jobs ORDER BY name"
        return [tuple(row) for row in connection.execute(sa.text(query))]


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM scheduled_jobs"))


@pytest.mark.parametrize("now", [NOW, NOW.astimezone(timezone(timedelta(hours=-5)))])
def test_new_rows_written_are_the_rows_psycopg_copies(engine: Engine, now: datetime) -> None:
    made = targets(BULK_ROWS + 3)  # upsert_inventory goes through psycopg's binary COPY
    with engine.begin() as connection:
        upsert_inventory(connection, made, now=now, expect_new=True)
    copied = inventory(engine)
    clear(engine)
    data = encode_new_inventory(made, now=now)
    assert data is not None
    with engine.begin() as connection:
        assert copy_new_inventory(connection, data)
    assert inventory(engine) == copied
    assert len(copied) == BULK_ROWS + 3
    assert {row[-1] for row in copied} == {1}  # generation: the table's default
    assert sum(1 for row in copied if row[9] is None) == (BULK_ROWS + 3 + 2) // 3


def test_rows_of_which_one_name_exists_are_refused_whole(engine: Engine) -> None:
    made = targets()
    with engine.begin() as connection:
        upsert_inventory(connection, made[3:4], now=NOW)
    before = inventory(engine)
    data = encode_new_inventory(made, now=NOW)
    assert data is not None
    with engine.begin() as connection:
        assert not copy_new_inventory(connection, data)
        connection.execute(sa.select(1))  # the transaction goes on: the savepoint rolled back
    assert inventory(engine) == before


def test_what_has_no_binary_form_here_is_left_to_the_driver() -> None:
    made = targets(3)
    assert encode_new_inventory(made, now=NOW) is not None
    for broken in (
        dataclasses.replace(made[1], line=2**31),
        dataclasses.replace(made[1], source="a\x00b"),
        dataclasses.replace(made[1], revision="r\x00"),
        dataclasses.replace(made[1], spec_hash="h\x00"),
    ):
        assert encode_new_inventory([made[0], broken, made[2]], now=NOW) is None
    assert encode_new_inventory(made, now=NOW.replace(tzinfo=None)) is None  # no timestamptz


def write_jobs(root: Path) -> None:
    for number in range(BULK_ROWS // 3 + 10):
        documents = [
            f"name: job-{number}-{slot}\ntask: reconciler.tasks.example_task\n"
            f'schedule: {{cron: "{slot} 3 * * *"}}\nlabels: {{team: t{number % 4}}}\n'
            f"kwargs: {{data: {{n: {number}, ratio: {number / 3}}}}}\n"
            for slot in range(3)
        ]
        (root / f"f{number:04d}.yaml").write_text("---\n".join(documents))


def cold_apply(root: Path, url: str) -> list[tuple[Any, ...]]:
    """A one-shot apply of `root` on an empty database; its inventory."""
    upgrade_database(url)
    engine = create_sync_engine(url)
    try:
        settings = Settings(database_url=url, jobs_dir=root)
        result = reconcile_once(engine, settings, trigger=Trigger.CLI, clock=lambda: NOW)
        assert not result.plan.quarantined
        return inventory(engine)
    finally:
        engine.dispose()


def test_a_cold_apply_writes_the_inventory_the_driver_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The added jobs' inventory rows are encoded here and sent by a thread; when they
    cannot be encoded here, psycopg's COPY writes them, the same rows."""
    if not fork_here(request):
        return  # it ran alone, in a fresh process, and passed there
    write_jobs(tmp_path)
    encoded: list[bytes | None] = []

    def spied(*args: Any, **kwargs: Any) -> bytes | None:
        encoded.append(encode_new_inventory(*args, **kwargs))
        return encoded[-1]

    monkeypatch.setattr(apply_module, "encode_new_inventory", spied)
    with fresh_database() as url:
        ours = cold_apply(tmp_path, url)
    assert len(encoded) == 1 and encoded[0] is not None
    monkeypatch.setattr(apply_module, "encode_new_inventory", lambda *_, **__: None)
    with fresh_database() as url:
        assert cold_apply(tmp_path, url) == ours
    assert len(ours) == 3 * (BULK_ROWS // 3 + 10)


def test_an_added_job_whose_name_was_taken_meanwhile_is_upserted(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """An add whose inventory row exists after all (a concurrent writer): the COPY is
    refused, and the rows are upserted, as psycopg's path does (created_at kept,
    generation moved)."""
    if not fork_here(request):
        return  # it ran alone, in a fresh process, and passed there
    specs = [spec(f"job-{n}", labels={"n": str(n)}) for n in range(BULK_ROWS + 3)]
    plan = make_plan(desired(*specs), ActualState(inventory={}, scheduler={}), now=NOW)
    assert plan.changes[5].target is not None
    older = dataclasses.replace(plan.changes[5].target, line=99, revision_dirty=True)

    def apply_over_taken_name() -> list[tuple[Any, ...]]:
        with fresh_database() as url:
            upgrade_database(url)
            engine = create_sync_engine(url)
            try:
                with engine.begin() as connection:
                    upsert_inventory(connection, [older], now=NOW - timedelta(days=1))
                    apply_plan(connection, plan, now=NOW, rows_wanted=False)
                return inventory(engine)
            finally:
                engine.dispose()

    ours = apply_over_taken_name()
    monkeypatch.setattr(apply_module, "encode_new_inventory", lambda *_, **__: None)
    assert apply_over_taken_name() == ours
    taken = next(row for row in ours if row[0] == older.spec.name)
    assert taken[-3:] == (NOW - timedelta(days=1), NOW, 2)  # created_at, updated_at, generation
    assert taken[8] == 1 and len(ours) == BULK_ROWS + 3
