"""The no-op check of `reconcile plan` (commands/_noop.py) against the full path: over
random histories (applies, files edited, drift injected in each table, foreign rows,
fires written back by the daemon's job store and rows tampered with after them, the
clock passing one-off dates, settings changed), the check either declines or prints
exactly what the full path prints (and the full path then exits 0). Plus the console
script in a subprocess: the same bytes, exit code and stderr, without SQLAlchemy,
pydantic or APScheduler imported, also while a scheduler on the daemon's job store
fires jobs every second."""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.commands import _noop
from reconciler.commands._common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, EXIT_REFUSED
from reconciler.core.plan_json import render_json
from reconciler.core.render import render_markdown, render_text
from reconciler.core.vocabulary import Trigger
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import load_settings
from reconciler.store.db import create_sync_engine
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.migrate import upgrade_database

RECONCILE = str(Path(sys.executable).with_name("reconcile"))
NOW = datetime.now(UTC)
SOON = (NOW + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
LATER = (NOW + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S")
JOBS = {
    "a.yaml": [
        ("a1", 'schedule: {cron: "*/5 * * * *"}'),
        ("a2", "schedule: {interval: {minutes: 7}}\npaused: true"),
    ],
    "team/b.yaml": [
        ("b1", f"schedule: {{at: {SOON}}}"),
        ("b2", f"schedule: {{at: {LATER}}}\ntimezone: Europe/Berlin"),
        ("b3", "schedule: {at: 2020-01-01T09:00:00}"),  # completed
    ],
    "team/c.yml": [("c1", 'schedule: {cron: "0 9 * * 1-5"}\ntimezone: Europe/Berlin')],
}


def job_text(name: str, body: str, extra: str = "") -> str:
    return f"name: {name}\ntask: reconciler.tasks.example_task\n{body}\n{extra}"


def write_files(root: Path) -> None:
    for path, jobs in JOBS.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("---\n".join(job_text(*job) for job in jobs), encoding="utf-8")


@pytest.fixture
def world(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    jobs = tmp_path / "jobs"
    write_files(jobs)
    saved = {k: v for k, v in os.environ.items() if k.startswith("RECONCILER_")}
    for name in saved:
        del os.environ[name]
    os.environ["RECONCILER_DATABASE_URL"] = pg_url
    os.environ["RECONCILER_JOBS_DIR"] = str(jobs)
    os.environ["RECONCILER_STATE_DIR"] = str(tmp_path / "state")
    upgrade_database(pg_url)
    apply(pg_url)
    try:
        yield pg_url, jobs
    finally:
        for name in [k for k in os.environ if k.startswith("RECONCILER_")]:
            del os.environ[name]
        os.environ.update(saved)


def apply(url: str) -> None:
    engine = create_sync_engine(url)
    try:
        reconcile_once(engine, load_settings(), trigger=Trigger.CLI, apply=True)
    finally:
        engine.dispose()


def apply_if_valid(url: str) -> None:
    """`reconcile apply` as a step of a history: with a setting that does not validate the
    command stops before it reads anything (a configuration error), so nothing changes."""
    try:
        load_settings()
    except ValidationError:
        return
    apply(url)


def full(fmt: str, now: datetime) -> tuple[str, int]:
    """What `reconcile plan --format FMT` prints on stdout, and its exit code, on the
    full path at `now`."""
    settings_ = load_settings()
    engine = create_sync_engine(settings_.database_url).execution_options(postgresql_readonly=True)
    try:
        plan = reconcile_once(
            engine, settings_, trigger=Trigger.CLI, apply=False, clock=lambda: now
        ).plan
    finally:
        engine.dispose()
    if fmt == "json":
        text = render_json(plan) + "\n"
    elif fmt == "markdown":
        text = render_markdown(plan)
    else:
        text = render_text(plan, colour=False)
    if plan.quarantined:
        return text, EXIT_ERROR
    if plan.refused:
        return text, EXIT_REFUSED
    return text, EXIT_CHANGES if plan.has_changes else EXIT_OK


def quick(fmt: str, now: datetime) -> str | None:
    return _noop.quick_plan(argparse.Namespace(format=fmt), now=now)


def agree(now: datetime = NOW) -> bool:
    """Every format: the check declines, or prints the full path's text (exit 0).
    Returns whether it answered."""
    answered = False
    for fmt in ("text", "json", "markdown"):
        lean = quick(fmt, now)
        if lean is not None:
            assert (lean, EXIT_OK) == full(fmt, now)
            answered = True
    return answered


def sql(url: str, statement: str) -> None:
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def drift(statement: str) -> Step:
    return lambda url, jobs: sql(url, statement)


def append(path: str, text: str) -> Step:
    return lambda url, jobs: (jobs / path).write_text((jobs / path).read_text() + text)


def create(path: str, text: str) -> Step:
    return lambda url, jobs: (jobs / path).write_text(text)


def setting(name: str, value: str | None) -> Step:
    def step(url: str, jobs: Path) -> None:
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    return step


def fire(url: str, jobs: Path, *, change: Callable[[Job], object] | None = None) -> None:
    """Every job due within a day fires its next slot, written back exactly as the
    daemon's job store writes what its scheduler fired (OwnedJobStore: update_job, then
    flush; a one-off's last fire removes its row, as APScheduler does). `change`: done to
    a1 before its write-back (as a job modified through the scheduler's API would be)."""
    engine = create_sync_engine(url)
    try:
        store = OwnedJobStore(engine=engine)
        for job in store.get_due_jobs(NOW + timedelta(days=1)):
            if job.next_run_time is None:  # a paused state, its column set by hand: no run
                continue
            following = job.trigger.get_next_fire_time(job.next_run_time, job.next_run_time)
            if following is None:
                store.remove_job(job.id)
                continue
            job.next_run_time = following
            if change is not None and job.id == "a1":
                change(job)
            store.update_job(job)
        store.flush()
    finally:
        engine.dispose()


def fire_then(edit: Callable[[dict[str, Any]], object]) -> Step:
    """A fire, then a1's state rewritten by hand (its next_run_time column kept):
    `edit` changes the state dict in place."""

    def step(url: str, jobs: Path) -> None:
        fire(url, jobs)
        engine = create_sync_engine(url)
        try:
            with engine.begin() as connection:
                row = sa.text("SELECT job_state FROM apscheduler_jobs WHERE id = 'a1'")
                found = connection.execute(row).scalar()
                if found is None:  # removed by an earlier step
                    return
                state = pickle.loads(found)
                edit(state)
                connection.execute(
                    sa.text("UPDATE apscheduler_jobs SET job_state = :state WHERE id = 'a1'"),
                    {"state": pickle.dumps(state)},
                )
        finally:
            engine.dispose()

    return step


Step = Callable[[str, Path], object]
INTERVAL = "schedule: {interval: {minutes: 3}}"
COPY = (
    "spec, spec_hash, task, queue, labels, status, source_file, source_line, revision, "
    "revision_dirty, created_at, updated_at, generation"
)
# Drift and edits, each a function of (url, jobs folder).
STEPS: dict[str, Step] = {
    "apply": lambda url, jobs: apply_if_valid(url),
    "edit a file": append("a.yaml", "\ndescription: edited\n"),
    "comment a file": append("team/c.yml", "\n# a comment\n"),
    "new file": create("new.yaml", job_text("n1", INTERVAL)),
    "broken file": create("bad.yaml", "name: [unclosed"),
    "remove a file": lambda url, jobs: (jobs / "new.yaml").unlink(missing_ok=True),
    "duplicate name": create("dup.yaml", job_text("c1", INTERVAL)),
    "inventory status": drift("UPDATE scheduled_jobs SET status = 'paused' WHERE name = 'a1'"),
    "inventory hash": drift(
        "UPDATE scheduled_jobs SET spec_hash = md5(spec_hash) || md5(name) WHERE name = 'c1'"
    ),
    "inventory essence": drift(
        "UPDATE scheduled_jobs SET spec = jsonb_set(spec, '{paused}', 'true'), "
        "status = 'paused' WHERE name = 'a1'"
    ),
    "inventory source": drift("UPDATE scheduled_jobs SET source_file = 'x.yaml' WHERE name = 'b2'"),
    "inventory row removed": drift("DELETE FROM scheduled_jobs WHERE name = 'b1'"),
    "inventory row added": drift(
        f"INSERT INTO scheduled_jobs SELECT 'zz', {COPY} FROM scheduled_jobs "
        "WHERE name = 'a1' ON CONFLICT DO NOTHING"
    ),
    "row paused": drift("UPDATE apscheduler_jobs SET next_run_time = NULL WHERE id = 'c1'"),
    "row resumed": drift("UPDATE apscheduler_jobs SET next_run_time = 1 WHERE id = 'a2'"),
    "row bytes": drift(
        "UPDATE apscheduler_jobs SET job_state = job_state || '\\x00'::bytea WHERE id = 'b2'"
    ),
    "row removed": drift("DELETE FROM apscheduler_jobs WHERE id = 'a1'"),
    "row record removed": drift("DELETE FROM written_scheduler_rows WHERE id = 'b1'"),
    "row record other revision": drift(
        "UPDATE written_scheduler_rows SET revision = 'x' WHERE id = 'c1'"
    ),
    "foreign row": drift(
        "INSERT INTO apscheduler_jobs SELECT 'foreign-' || md5(random()::text), "
        "next_run_time, job_state FROM apscheduler_jobs WHERE id = 'a1'"
    ),
    "file record removed": drift("DELETE FROM job_files WHERE path = 'a.yaml'"),
    "fire": fire,
    "fired row moved by hand": lambda url, jobs: (
        fire(url, jobs),
        sql(
            url, "UPDATE apscheduler_jobs SET next_run_time = next_run_time + 3600 WHERE id = 'a1'"
        ),
    ),
    "fired row paused by hand": lambda url, jobs: (
        fire(url, jobs),
        sql(url, "UPDATE apscheduler_jobs SET next_run_time = NULL WHERE id = 'a1'"),
    ),
    "fired with other arguments": lambda url, jobs: fire(
        url, jobs, change=lambda job: setattr(job, "kwargs", {**job.kwargs, "job": "other"})
    ),
    "fired with another trigger": lambda url, jobs: fire(
        url, jobs, change=lambda job: setattr(job, "trigger", IntervalTrigger(minutes=5))
    ),
    "fired row's arguments changed": fire_then(
        lambda state: state["kwargs"]["payload"].update(queue="high_priority")
    ),
    "fired row's state re-timed": fire_then(
        lambda state: state.update(next_run_time=state["next_run_time"] + timedelta(hours=1))
    ),
    "queues setting": setting(
        "RECONCILER_QUEUES", "default,high_priority,low_priority,scheduled,extra"
    ),
    "queues setting back": setting("RECONCILER_QUEUES", None),
    "max file bytes": setting("RECONCILER_MAX_FILE_BYTES", "2048"),
    "max file bytes back": setting("RECONCILER_MAX_FILE_BYTES", None),
    "bad setting": setting("RECONCILER_API_PORT", "0"),
    "bad setting back": setting("RECONCILER_API_PORT", None),
}
BACK = {"apply", "remove a file", "queues setting back", "max file bytes back", "bad setting back"}


def histories(longest: int) -> st.SearchStrategy[list[tuple[str, timedelta]]]:
    """Random histories: steps, each checked at a clock."""
    steps = st.tuples(st.sampled_from(sorted(STEPS)), st.sampled_from(CLOCKS))
    return st.lists(steps, min_size=1, max_size=longest)


CLOCKS = [
    timedelta(0),
    timedelta(days=2, hours=23),  # b1 one hour away (in some zone): undecided
    timedelta(days=3, minutes=1),  # b1 just passed
    timedelta(days=5),  # b1 past: completed
    timedelta(days=800),  # b2 past too
]


def test_the_check_answers_for_a_state_nothing_changed(world: tuple[str, Path]) -> None:
    for fmt in ("text", "json", "markdown"):
        lean = quick(fmt, NOW)
        assert lean is not None, fmt
        assert (lean, EXIT_OK) == full(fmt, NOW)


@pytest.mark.parametrize("value", ["0", "false", "Off", "no", "maybe", " 1"])
def test_the_fast_plan_setting_turns_the_check_off(world: tuple[str, Path], value: str) -> None:
    """RECONCILER_FAST_PLAN, read as the settings model reads a bool: false turns the
    check off, a value the model refuses leaves the full path to report it."""
    os.environ["RECONCILER_FAST_PLAN"] = value
    try:
        assert quick("text", NOW) is None
        os.environ["RECONCILER_FAST_PLAN"] = value.replace("0", "1").replace("no", "yes")
        on = quick("text", NOW) is not None
        assert on == (value in ("0", "no")), value
    finally:
        del os.environ["RECONCILER_FAST_PLAN"]


# Steps after which the full path plans no change: the check must answer. A row's next
# run time is the scheduler's own (the plan reads only whether it is NULL, paused);
# a row rewritten by hand is decoded by the full path (the check declines, "re-timed").
NO_CHANGE = {"foreign row", "fire", "fired row moved by hand"}


@pytest.mark.parametrize("step", sorted(set(STEPS) - BACK))
def test_every_change_and_drift_is_declined_or_agreed(world: tuple[str, Path], step: str) -> None:
    url, jobs = world
    STEPS[step](url, jobs)
    if step in NO_CHANGE:  # a foreign row is reported, not a change
        assert agree(), f"{step}: the check declined a state with no change"
        assert agree(), f"{step}: the check declined the next plan"  # a plan writes nothing
    else:
        assert not agree(), f"{step}: the check answered for a changed state"


def test_fires_keep_the_check_answering(world: tuple[str, Path]) -> None:
    """Fire after fire (the first after an apply is recognised by decoding, the later
    ones by their bytes), and after an apply that rewrote a fired row."""
    url, jobs = world
    for _ in range(3):
        fire(url, jobs)
        assert agree()
    STEPS["edit a file"](url, jobs)
    apply(url)
    for _ in range(2):
        fire(url, jobs)
        assert agree()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(history=[("bad setting", timedelta(0)), ("apply", timedelta(0))])  # found in CI
@example(
    history=[
        ("fire", timedelta(0)),
        ("edit a file", timedelta(0)),
        ("apply", timedelta(0)),
        ("fire", timedelta(0)),
    ]
)
@given(history=histories(8))
def test_random_histories(world: tuple[str, Path], history: list[tuple[str, timedelta]]) -> None:
    url, jobs = world
    try:
        for step, later in history:
            STEPS[step](url, jobs)
            agree(NOW + later)
    finally:
        back_to_applied(url, jobs)
    assert agree(NOW)


def back_to_applied(url: str, jobs: Path) -> None:
    """Undo what STEPS may have done, for the next example of a random history."""
    for name in ("RECONCILER_QUEUES", "RECONCILER_MAX_FILE_BYTES", "RECONCILER_API_PORT"):
        os.environ.pop(name, None)
    for name in ("new.yaml", "bad.yaml", "dup.yaml"):
        (jobs / name).unlink(missing_ok=True)
    write_files(jobs)
    sql(url, "DELETE FROM apscheduler_jobs WHERE id LIKE 'foreign-%'")
    sql(url, "DELETE FROM scheduled_jobs WHERE name = 'zz'")
    apply(url)


def run_console(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.update(env)
    return subprocess.run(
        [RECONCILE, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_console_script_prints_the_full_paths_bytes(world: tuple[str, Path]) -> None:
    url, _ = world
    sql(
        url,
        "INSERT INTO apscheduler_jobs SELECT 'foreign-1', next_run_time, job_state "
        "FROM apscheduler_jobs WHERE id = 'a1'",
    )
    commands = (
        ["plan"],
        ["plan", "--format", "json"],
        ["plan", "--format", "markdown"],
        ["--dry-run"],
        ["apply", "--dry-run"],
    )
    for args in commands:
        assert "foreign-1" in same_as_the_full_path(*args)
    assert took_the_fast_path()


def same_as_the_full_path(*args: str) -> str:
    """The console script's stdout, after checking that it exits 0 and prints the same
    bytes (stdout, stderr) as with the fast path off."""
    lean = run_console(*args)
    slow = run_console(*args, RECONCILER_FAST_PLAN="0")
    assert (lean.returncode, lean.stdout, lean.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    ), args
    assert lean.returncode == EXIT_OK
    return lean.stdout


def took_the_fast_path(command: str = "plan") -> bool:
    """Whether `reconcile COMMAND` in a child answers with exit 0 and without importing
    what the full path imports (SQLAlchemy, pydantic, APScheduler, psycopg)."""
    probe = (
        f"import sys; from reconciler.cli import main; code = main([{command!r}]); "
        "heavy = sorted({'sqlalchemy', 'pydantic', 'apscheduler', 'psycopg'} & set(sys.modules)); "
        "print(code, heavy, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    return done.stderr.strip().splitlines()[-1] == "0 []"


class _Discard(BaseExecutor):
    """Runs nothing (the fire itself is not under test), done at once."""

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._run_job_success(job.id, [])


EVERY_SECOND = {
    "fast.yaml": [
        ("f1", 'schedule: {cron: "* * * * * *"}'),
        ("f2", "schedule: {interval: {seconds: 1}}\ntimezone: Europe/Berlin"),
        ("f3", 'schedule: {cron: "* * * * * *"}\npaused: true'),
    ]
}


def test_the_console_script_answers_while_a_scheduler_fires(world: tuple[str, Path]) -> None:
    """The daemon's job store on a running APScheduler fires two jobs every second: the
    console script still takes the fast path, and prints the full path's bytes."""
    url, jobs = world
    for path, declared in EVERY_SECOND.items():
        (jobs / path).write_text("---\n".join(job_text(*job) for job in declared))
    apply(url)
    engine = create_sync_engine(url)
    scheduler = BackgroundScheduler(
        jobstores={"default": OwnedJobStore(engine=engine)},
        executors={"default": _Discard()},
        timezone=UTC,
    )
    moves = "SELECT next_run_time FROM apscheduler_jobs WHERE id IN ('f1', 'f2') ORDER BY id"
    with engine.connect() as connection:
        first = connection.execute(sa.text(moves)).scalars().all()
    scheduler.start()
    try:
        time.sleep(3.5)  # a first fire of each (decoded), then fires known by their bytes
        with engine.connect() as connection:
            fired = connection.execute(sa.text(moves)).scalars().all()
        assert all(now >= then + 2 for now, then in zip(fired, first, strict=True)), (first, fired)
        assert took_the_fast_path()
        for args in (["plan"], ["plan", "--format", "json"], ["plan", "--format", "markdown"]):
            same_as_the_full_path(*args)
        assert took_the_fast_path()
    finally:
        scheduler.shutdown()
        engine.dispose()
