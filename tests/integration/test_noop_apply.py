"""The no-op apply (commands/_noop.quick_apply) against the full path: after every change
and drift of test_noop_plan's histories, the quick apply either declines and writes
nothing, or prints the full path's summary and leaves every table exactly as the full
path leaves it (the same reconcile_runs row but for its id, times and duration); a
full apply run next then finds no change and writes nothing but its own row. Plus the
console script: the same stdout (but for the duration), stderr and exit code as with
the fast path off, the same rows, without SQLAlchemy, pydantic or APScheduler."""

from __future__ import annotations

import argparse
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from reconciler.commands import _noop
from reconciler.commands._common import EXIT_OK
from reconciler.core.vocabulary import ReconcileOutcome, Trigger
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import load_settings
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import metadata
from tests.polling import wait_until

from .test_noop_plan import (
    BACK,
    NO_CHANGE,
    NOW,
    STEPS,
    apply,
    back_to_applied,
    histories,
    run_console,
    sql,
    took_the_fast_path,
    world,
    write_files,
)

__all__ = ["world"]  # the fixture, shared with test_noop_plan

# A pass's own values: they differ between any two passes.
_OWN = ("id", "started_at", "finished_at", "duration_seconds")


def tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, in key order."""
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(
                        sa.select(table).order_by(*(table.primary_key.columns or table.columns))
                    )
                ]
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def split_runs(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> list[dict[str, Any]]:
    """The reconcile_runs rows `after` holds beyond `before` (without their own values);
    every other table must be the same."""
    others = {name: rows for name, rows in after.items() if name != "reconcile_runs"}
    assert others == {name: rows for name, rows in before.items() if name != "reconcile_runs"}
    columns = [column.name for column in metadata.tables["reconcile_runs"].columns]
    new = after["reconcile_runs"][len(before["reconcile_runs"]) :]
    assert after["reconcile_runs"][: len(before["reconcile_runs"])] == before["reconcile_runs"]
    return [
        {key: value for key, value in zip(columns, row, strict=True) if key not in _OWN}
        for row in new
    ]


def full_apply(url: str, later: timedelta) -> ReconcileOutcome:
    engine = create_sync_engine(url)
    try:
        return reconcile_once(
            engine, load_settings(), trigger=Trigger.CLI, apply=True, clock=lambda: NOW + later
        ).outcome
    finally:
        engine.dispose()


SUMMARY = re.compile(r"No changes \(0 quarantined files, [0-9]+\.[0-9]{2} s\)\.\n")


def check(url: str, later: timedelta = timedelta(0)) -> bool:
    """The quick apply at NOW + `later`: declined with nothing written, or answered with
    the full path's summary and row, after which a full apply finds no change and
    writes only its own row, the same. Returns whether it answered."""
    before = tables(url)
    said = _noop.quick_apply(argparse.Namespace(plan_file=None, plan_hash=None), now=NOW + later)
    after = tables(url)
    if said is None:
        assert after == before, "the quick apply declined but wrote"
        return False
    assert SUMMARY.fullmatch(said), said
    (quick_row,) = split_runs(before, after)
    assert full_apply(url, later) == ReconcileOutcome.NO_CHANGES
    (full_row,) = split_runs(after, tables(url))
    assert quick_row == full_row
    return True


def test_the_quick_apply_answers_for_a_state_nothing_changed(world: tuple[str, Path]) -> None:
    url, _ = world
    assert check(url)
    assert check(url)  # and again: it changed nothing the next check reads


@pytest.mark.parametrize("step", sorted(set(STEPS) - BACK))
def test_every_change_and_drift_is_declined_or_agreed(world: tuple[str, Path], step: str) -> None:
    """After a change or drift the full path changes something: the quick apply must
    decline; after the steps the plan finds nothing to change it must answer."""
    url, jobs = world
    STEPS[step](url, jobs)
    if step in NO_CHANGE:
        assert check(url), f"{step}: the quick apply declined a state with no change"
    else:
        assert not check(url), f"{step}: the quick apply answered for a changed state"


def test_what_only_an_apply_writes_is_declined(world: tuple[str, Path]) -> None:
    """States the plan does not change but a full apply would write to: a record of a
    file that is gone (deleted by the full path), a stale quarantine row (cleared)."""
    url, jobs = world
    (jobs / "empty.yaml").write_text("# no job\n")
    apply(url)
    (jobs / "empty.yaml").unlink()
    assert _noop.quick_plan(argparse.Namespace(format="text"), now=NOW) is not None
    assert not check(url)  # the full path deletes the record
    apply(url)
    assert check(url)
    sql(
        url,
        "INSERT INTO quarantined_files (path, diagnostics, since, last_seen) "
        "VALUES ('gone.yaml', '[]', now(), now())",
    )
    assert not check(url)  # the full path clears the quarantine
    apply(url)
    assert check(url)


def test_a_saved_plan_or_a_plan_hash_takes_the_full_path(world: tuple[str, Path]) -> None:
    for plan_file, plan_hash in (("plan.json", None), (None, "0" * 64)):
        args = argparse.Namespace(plan_file=plan_file, plan_hash=plan_hash)
        assert _noop.quick_apply(args, now=NOW) is None


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories(6))
def test_random_histories(world: tuple[str, Path], history: list[tuple[str, timedelta]]) -> None:
    url, jobs = world
    try:
        for step, later in history:
            STEPS[step](url, jobs)
            check(url, later)
    finally:
        back_to_applied(url, jobs)
    assert check(url)


def test_the_console_script_prints_and_records_what_the_full_path_does(
    world: tuple[str, Path],
) -> None:
    url, _ = world
    sql(
        url,
        "INSERT INTO apscheduler_jobs SELECT 'foreign-1', next_run_time, job_state "
        "FROM apscheduler_jobs WHERE id = 'a1'",
    )
    for args in (["apply"], ["apply", "--auto-approve"], ["apply", "--quiet"]):
        start = tables(url)
        lean = run_console(*args)
        middle = tables(url)
        slow = run_console(*args, RECONCILER_FAST_PLAN="0")
        assert (lean.returncode, lean.stderr) == (slow.returncode, slow.stderr) == (EXIT_OK, "")
        assert SUMMARY.fullmatch(lean.stdout) and SUMMARY.fullmatch(slow.stdout), args
        (quick_row,) = split_runs(start, middle)
        (full_row,) = split_runs(middle, tables(url))
        assert quick_row == full_row
        assert quick_row["foreign_rows"] == 1
    assert took_the_fast_path("apply")


def lock_waiters(url: str) -> int:
    """Sessions of this database waiting for an advisory lock (the apply lock)."""
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                )
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read"])
@pytest.mark.parametrize("path", ["quick", "full"])
def test_an_apply_waited_for_is_read_whatever_the_default_isolation(
    world: tuple[str, Path], tmp_path: Path, isolation: str, path: str
) -> None:
    """Apply A (a1's cron changed) holds the apply lock; apply B, with the applied files
    (the old a1), waits for it. B must then read A's state and put a1 back: the full path
    applies, the quick apply declines (and its command takes the full path). Under a
    database's default_transaction_isolation of REPEATABLE READ, B's snapshot was taken
    by its lock statement, before A committed: B recorded no change (review finding 4)."""
    url, _ = world
    database = url.rsplit("/", 1)[1]
    sql(url, f"ALTER DATABASE \"{database}\" SET default_transaction_isolation = '{isolation}'")
    other = tmp_path / "other"
    write_files(other)
    a_yaml = other / "a.yaml"
    a_yaml.write_text(a_yaml.read_text().replace('"*/5 * * * *"', '"*/10 * * * *"', 1))
    a_holds_the_lock = threading.Event()

    def wait_for_b(*_: object) -> None:  # A's before_commit: A has written, not committed
        a_holds_the_lock.set()
        wait_until(lambda: lock_waiters(url), timeout=30, what="B waiting for the apply lock")

    def apply_a() -> ReconcileOutcome:
        engine = create_sync_engine(url)
        try:
            settings_a = load_settings().model_copy(update={"jobs_dir": other})
            return reconcile_once(
                engine, settings_a, trigger=Trigger.CLI, apply=True, before_commit=wait_for_b
            ).outcome
        finally:
            engine.dispose()

    with ThreadPoolExecutor(1) as thread:
        a = thread.submit(apply_a)
        assert a_holds_the_lock.wait(timeout=60), "A did not get to hold the apply lock"
        if path == "quick":
            said = _noop.quick_apply(argparse.Namespace(plan_file=None, plan_hash=None), now=NOW)
            assert said is None, "the quick apply recorded no change over the apply it waited for"
        # The full path: B itself, or the quick apply's command once it declined.
        b = full_apply(url, timedelta(0))
        assert a.result() == ReconcileOutcome.APPLIED
    assert b == ReconcileOutcome.APPLIED, "the full path recorded no change over A"
