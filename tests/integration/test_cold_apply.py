"""A cold `reconcile apply` on two cores (console script, PostgreSQL): the files parsed
by a child started before the database is read (spec.loader.load_ahead) and the plan's
text rendered by a child while the plan is written must change nothing the user sees or
the database holds. The reference is the same command pinned to one CPU (no child)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.spec.parallel import MIN_FILES
from reconciler.store.emptiness import holds_no_file_records
from reconciler.store.migrate import upgrade_database

pytestmark = pytest.mark.services

RECONCILE = str(Path(sys.executable).with_name("reconcile"))


def write_jobs(root: Path, files: int) -> None:
    for number in range(files):
        documents = [
            f"name: job-{number}-{slot}\ntask: reconciler.tasks.example_task\n"
            f'schedule: {{cron: "{slot} 3 * * *"}}\ntimezone: Europe/Berlin\n'
            f"kwargs: {{data: {{n: {number}, ratio: 0.5}}}}\n"
            for slot in range(3)
        ]
        (root / f"f{number:04d}.yaml").write_text("---\n".join(documents))


def apply(root: Path, url: str, *pinned: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    environment.update(
        RECONCILER_DATABASE_URL=url,
        RECONCILER_JOBS_DIR=str(root / "jobs"),
        RECONCILER_STATE_DIR=str(root / "state"),
    )
    done = subprocess.run(
        [*pinned, RECONCILE, "apply", "--auto-approve"],
        env=environment,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    head, _, last = done.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("Applied: "), last
    return head + "\n" + last.rsplit(", ", 1)[0]  # the duration aside


def state(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:

        def rows(sql: str) -> list[Any]:
            return [tuple(row) for row in connection.execute(sa.text(sql))]

        scheduler = [
            (name, moment, pickle.loads(blob))
            for name, moment, blob in rows(
                "SELECT id, next_run_time, job_state FROM apscheduler_jobs ORDER BY id"
            )
        ]
        found = {
            "inventory": rows(
                "SELECT name, spec, spec_hash, status, source_file, source_line, generation "
                "FROM scheduled_jobs ORDER BY name"
            ),
            "scheduler": [(name, moment, repr(sorted(s.items()))) for name, moment, s in scheduler],
            "files": rows("SELECT path, digest, context, outcome FROM job_files ORDER BY path"),
            "written": rows("SELECT * FROM written_scheduler_rows ORDER BY id"),
            "runs": rows("SELECT trigger, outcome, plan_hash, added FROM reconcile_runs"),
        }
    engine.dispose()
    return found


def empty(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.mark.slow
def test_a_cold_apply_on_two_cores_is_the_apply_on_one(tmp_path: Path, pg_url: str) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    (tmp_path / "jobs").mkdir()
    write_jobs(tmp_path / "jobs", MIN_FILES + 30)
    one_core = apply(tmp_path, pg_url, "taskset", "-c", str(min(os.sched_getaffinity(0))))
    expected = state(pg_url)
    empty(pg_url)
    assert holds_no_file_records(pg_url)
    two_cores = apply(tmp_path, pg_url)
    assert two_cores == one_core
    assert state(pg_url) == expected
    assert len(expected["inventory"]) == 3 * (MIN_FILES + 30)


def test_the_hint_says_empty_only_without_file_records(tmp_path: Path, pg_url: str) -> None:
    assert holds_no_file_records(pg_url)  # no table
    upgrade_database(pg_url)
    assert holds_no_file_records(pg_url)  # an empty table
    (tmp_path / "jobs").mkdir()
    write_jobs(tmp_path / "jobs", 2)
    apply(tmp_path, pg_url)
    assert not holds_no_file_records(pg_url)
    assert not holds_no_file_records(f"sqlite:///{tmp_path / 'state.db'}")
    assert not holds_no_file_records("postgresql://postgres@127.0.0.1:1/nothing")
