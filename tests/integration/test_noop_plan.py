"""The no-op check of `reconcile plan` (commands/_noop.py) against the full path: over
random histories (applies, files edited, drift injected in each table, foreign rows,
the clock passing one-off dates, settings changed), the check either declines or
prints exactly what the full path prints (and the full path then exits 0). Plus the
console script in a subprocess: the same bytes, exit code and stderr, without
SQLAlchemy, pydantic or APScheduler imported."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
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


@pytest.mark.parametrize("step", sorted(set(STEPS) - BACK))
def test_every_change_and_drift_is_declined_or_agreed(world: tuple[str, Path], step: str) -> None:
    url, jobs = world
    STEPS[step](url, jobs)
    answered = agree()
    if step != "foreign row":  # a foreign row is reported, not a change
        assert not answered, f"{step}: the check answered for a changed state"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(history=[("bad setting", timedelta(0)), ("apply", timedelta(0))])  # found in CI
@given(
    history=st.lists(
        st.tuples(st.sampled_from(sorted(STEPS)), st.sampled_from(CLOCKS)), min_size=1, max_size=8
    )
)
def test_random_histories(world: tuple[str, Path], history: list[tuple[str, timedelta]]) -> None:
    url, jobs = world
    try:
        for step, later in history:
            STEPS[step](url, jobs)
            agree(NOW + later)
    finally:  # back to the applied state for the next example
        for name in ("RECONCILER_QUEUES", "RECONCILER_MAX_FILE_BYTES", "RECONCILER_API_PORT"):
            os.environ.pop(name, None)
        for name in ("new.yaml", "bad.yaml", "dup.yaml"):
            (jobs / name).unlink(missing_ok=True)
        write_files(jobs)
        sql(url, "DELETE FROM apscheduler_jobs WHERE id LIKE 'foreign-%'")
        sql(url, "DELETE FROM scheduled_jobs WHERE name = 'zz'")
        apply(url)
    assert agree(NOW)


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
        lean = run_console(*args)
        slow = run_console(*args, RECONCILER_FAST_PLAN="0")
        assert (lean.returncode, lean.stdout, lean.stderr) == (
            slow.returncode,
            slow.stdout,
            slow.stderr,
        ), args
        assert lean.returncode == EXIT_OK and "foreign-1" in lean.stdout
    probe = (
        "import sys; from reconciler.cli import main; code = main(['plan']); "
        "heavy = sorted({'sqlalchemy', 'pydantic', 'apscheduler', 'psycopg'} & set(sys.modules)); "
        "print(code, heavy, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stderr.strip().splitlines()[-1] == "0 []"
