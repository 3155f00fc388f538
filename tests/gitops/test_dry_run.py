"""`--dry-run` never writes, wherever it is placed (issue 12, item 1).

Each placement is the plan (its output and exit codes) or a usage error; the database
is byte for byte what it was (SQLite: the file; PostgreSQL: pg_dump of schema + data),
and `reconcile plan` against nothing creates no database file and no table."""

from __future__ import annotations

import json
from pathlib import Path

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


def _same_plan(output: str, fmt: str) -> object:
    """A plan's output but its next fire times (they move with the clock)."""
    if fmt != "json":
        return _plan_text(output)
    document = json.loads(output)
    for change in document["changes"]:
        del change["next_fires_before"], change["next_fires_after"]
    return document


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


def test_apply_dry_run_takes_the_plans_output_flags(
    pg_workspace: Workspace, tmp_path: Path
) -> None:
    """README: `reconcile apply --dry-run` is `reconcile plan` (same output): its
    `--format` and `--out` too, wherever --dry-run is placed; without --dry-run they are
    a usage error (exit 1), never an apply."""
    workspace = pg_workspace
    workspace.write("a.yaml", job("a"))
    fresh = database_image(workspace.db_url)
    for fmt in ("json", "markdown"):
        plan = workspace.run("plan", "--format", fmt)
        assert plan.returncode == 2, plan.stderr
        for placement in PLACEMENTS[1:]:
            done = workspace.run(*placement, "--format", fmt)
            assert done.returncode == 2, (placement, fmt, done.stderr)
            assert _same_plan(done.stdout, fmt) == _same_plan(plan.stdout, fmt), placement
    saved = tmp_path / "plan.json"
    done = workspace.run("apply", "--dry-run", "--out", str(saved))
    assert done.returncode == 2 and '"format_version": 1' in saved.read_text(), done.stderr
    for flags in (("--format", "json"), ("--out", str(tmp_path / "other.json"))):
        refused = workspace.run("apply", "--auto-approve", *flags)
        assert refused.returncode == 1 and "usage:" in refused.stderr, (flags, refused.stderr)
    assert not (tmp_path / "other.json").exists()
    assert database_image(workspace.db_url) == fresh
