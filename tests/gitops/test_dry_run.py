"""`--dry-run` never writes, wherever it is placed (issue 12, item 1).

Each placement is the plan (its output and exit codes) or a usage error; the database
is byte for byte what it was (SQLite: the file; PostgreSQL: pg_dump of schema + data),
and `reconcile plan` against nothing creates no database file and no table."""

from __future__ import annotations

import pytest

from .cli import Workspace, database_image, job

pytestmark = [pytest.mark.services, pytest.mark.slow]

PLACEMENTS = [
    ("--dry-run",),
    ("--dry-run", "apply"),
    ("apply", "--dry-run"),
    ("apply", "--dry-run", "--auto-approve", "--allow-mass-delete"),
]
REFUSED = [
    ("--dry-run", "run"),
    ("--dry-run", "db", "upgrade"),
    ("--dry-run", "dev"),
    ("--dry-run", "worker"),
    ("--dry-run", "status"),
    ("run", "--dry-run"),
    ("db", "upgrade", "--dry-run"),
]


def _plan_text(output: str) -> list[str]:
    # Next fire times move with the clock between two runs; everything else must agree.
    return [line for line in output.splitlines() if "next fires" not in line]


def test_a_dry_run_creates_no_sqlite_file(sqlite_workspace: Workspace) -> None:
    sqlite_workspace.write("a.yaml", job("a"))
    for placement in [("plan",), *PLACEMENTS[:3]]:
        done = sqlite_workspace.run(*placement)
        assert done.returncode == 2, (placement, done.stderr)
        assert database_image(sqlite_workspace.db_url) == "(no file)", placement


def test_every_dry_run_placement_is_the_plan_and_writes_nothing(pg_workspace: Workspace) -> None:
    workspace = pg_workspace
    workspace.write("a.yaml", job("a"))
    fresh = database_image(workspace.db_url)
    plan = workspace.run("plan")
    assert plan.returncode == 2, plan.stderr
    assert database_image(workspace.db_url) == fresh  # no file, no table
    assert workspace.rows("select count(*) from pg_tables where schemaname='public'")[0][0] == 0
    for placement in PLACEMENTS:
        done = workspace.run(*placement)
        assert done.returncode == 2, (placement, done.stderr)
        assert _plan_text(done.stdout) == _plan_text(plan.stdout), placement
        assert database_image(workspace.db_url) == fresh, placement

    assert workspace.run("apply").returncode == 0
    workspace.write("a.yaml", job("a", cron="*/7 * * * *"))
    workspace.write("b.yaml", job("b"))
    applied = database_image(workspace.db_url)
    plan = workspace.run("plan")
    assert plan.returncode == 2 and "~ update  a" in plan.stdout
    for placement in PLACEMENTS:
        done = workspace.run(*placement)
        assert done.returncode == 2, (placement, done.stderr)
        assert _plan_text(done.stdout) == _plan_text(plan.stdout), placement
        assert database_image(workspace.db_url) == applied, placement
    assert workspace.run("--dry-run", "--format", "json").returncode == 2
    assert database_image(workspace.db_url) == applied


def test_commands_where_a_dry_run_means_nothing_refuse_it(pg_workspace: Workspace) -> None:
    pg_workspace.write("a.yaml", job("a"))
    before = database_image(pg_workspace.db_url)
    for argv in REFUSED:
        done = pg_workspace.run(*argv)
        assert done.returncode == 1, (argv, done.stdout + done.stderr)
        assert "usage:" in done.stderr and "Traceback" not in done.stderr, argv
    assert database_image(pg_workspace.db_url) == before
