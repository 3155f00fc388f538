"""Secure defaults: who can merge a job file can call only harmless tasks unless the
operator opts in, and the powerful built-ins stay inside their own settings.

Run through the console script as users run it, with the suite's permissive
RECONCILER_TASK_ALLOWLIST (tests/conftest.py) removed, so the real default applies."""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.settings import (
    DEFAULT_SQL_STATEMENTS,
    DEFAULT_TASK_ALLOWLIST,
    DEMO_TASKS,
    POWERFUL_TASKS,
    Settings,
)
from reconciler.spec import confine
from reconciler.worker.base import PermanentTaskError

RECONCILE = str(Path(sys.executable).parent / "reconcile")


def default_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECONCILER_")}
    return {**env, **extra}


def _job(name: str, task: str, kwargs: str = "") -> str:
    return f"name: {name}\ntask: {task}\nschedule: {{cron: '*/5 * * * *'}}\n{kwargs}"


def test_the_default_allowlist_refuses_powerful_and_demo_tasks(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    tasks = [*POWERFUL_TASKS, *DEMO_TASKS]
    arguments = {  # what each needs, so that only the allowlist can refuse them
        "reconciler.tasks.sql_maintenance": "kwargs: {statement: ANALYZE}\n",
        "reconciler.tasks.write_report": "kwargs: {path: r.json}\n",
    }
    for number, task in enumerate(tasks):
        (jobs / f"j{number}.yaml").write_text(_job(f"j{number}", task, arguments.get(task, "")))
    (jobs / "ok.yaml").write_text(
        _job("probe", "reconciler.tasks.http_probe", "kwargs: {url: 'http://x/'}\n")
        + "---\n"
        + _job("example", "reconciler.tasks.example_task")
    )
    result = subprocess.run(
        [RECONCILE, "validate", str(jobs)],
        capture_output=True,
        text=True,
        env=default_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    allowed = ", ".join(DEFAULT_TASK_ALLOWLIST)
    expected = [
        f"{jobs}/j{number}.yaml:2:7: TASK_NOT_ALLOWED task {task!r} is not on the allowlist "
        f"({allowed}; RECONCILER_TASK_ALLOWLIST)"
        for number, task in enumerate(tasks)
    ]
    assert [line for line in result.stdout.splitlines() if "TASK_NOT_ALLOWED" in line] == expected
    assert "ok.yaml" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.d"]  # validate wrote nothing

    # The operator opts in by name: then they validate.
    opted_in = default_env(RECONCILER_TASK_ALLOWLIST=",".join([*DEFAULT_TASK_ALLOWLIST, *tasks]))
    again = subprocess.run(
        [RECONCILE, "validate", str(jobs)], capture_output=True, text=True, env=opted_in
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_dev_allows_the_demo_helpers_confined_to_its_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.commands.dev import dev_environment

    args = argparse.Namespace(state_dir=str(tmp_path / "st"), port=8000, metrics_port=0)
    monkeypatch.delenv("RECONCILER_TASK_ALLOWLIST", raising=False)
    env = dev_environment(args)
    allowlist = env["RECONCILER_TASK_ALLOWLIST"].split(",")
    assert set(DEMO_TASKS) | set(POWERFUL_TASKS) <= set(allowlist)
    state = tmp_path / "st"
    assert env["RECONCILER_REPORT_DIR"] == str(state / "reports")
    assert env["RECONCILER_SQL_MAINTENANCE_URL"] == f"sqlite:///{state / 'state.db'}"


# --- sql_maintenance -------------------------------------------------------------------
@pytest.mark.parametrize(
    "statement",
    [
        "VACUUM",
        "vacuum analyze job_runs;",
        "ANALYZE",
        "REINDEX TABLE job_runs",
        "/* maintenance */ VACUUM (VERBOSE) job_runs",
        "  -- nightly\n  analyze scheduled_jobs ; ",
    ],
)
def test_allowlisted_statements_pass(statement: str) -> None:
    assert confine.checked_statement(statement, DEFAULT_SQL_STATEMENTS)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM job_runs", "statement not allowed"),
        ("DROP TABLE scheduled_jobs", "statement not allowed"),
        ("VACUUM; DROP TABLE job_runs", "only one SQL statement is allowed"),
        ("ANALYZE; DELETE FROM job_runs", "only one SQL statement is allowed"),
        ("/* VACUUM */ DELETE FROM job_runs", "statement not allowed"),
        ("-- VACUUM\nTRUNCATE job_runs", "statement not allowed"),
        ("VACUUMX", "statement not allowed"),
        ("'VACUUM'", "statement not allowed"),
        ("", "empty SQL statement"),
    ],
)
def test_other_statements_are_refused(statement: str, message: str) -> None:
    with pytest.raises(confine.Refused, match=message):
        confine.checked_statement(statement, DEFAULT_SQL_STATEMENTS)


def test_a_configured_statement_prefix_matches_whole_words() -> None:
    allowlist = ("DELETE FROM job_runs WHERE",)
    assert confine.checked_statement("delete from JOB_RUNS where id < 5", allowlist)
    for refused in ("DELETE FROM job_runs", "DELETE FROM job_runs_old WHERE 1=1"):
        with pytest.raises(confine.Refused):
            confine.checked_statement(refused, allowlist)


def _with_settings(task: Any, monkeypatch: pytest.MonkeyPatch, **values: Any) -> None:
    monkeypatch.setattr(task.app, "reconciler_settings", Settings(**values), raising=False)


def test_sql_maintenance_runs_only_on_its_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.tasks.sql import DISABLED, sql_maintenance

    own = tmp_path / "own.db"
    _with_settings(sql_maintenance, monkeypatch, database_url=f"sqlite:///{own}")
    with pytest.raises(PermanentTaskError) as raised:
        sql_maintenance.run("ANALYZE")
    assert str(raised.value) == DISABLED
    assert not own.exists()  # the reconciler's own database was never opened

    target = tmp_path / "target.db"
    sqlite3.connect(target).execute("CREATE TABLE t (x)").connection.close()
    _with_settings(
        sql_maintenance,
        monkeypatch,
        database_url=f"sqlite:///{own}",
        sql_maintenance_url=f"sqlite:///{target}",
    )
    assert "rowcount" in sql_maintenance.run("ANALYZE")
    with pytest.raises(PermanentTaskError, match="statement not allowed"):
        sql_maintenance.run("DROP TABLE t")
    tables = sqlite3.connect(target).execute("SELECT name FROM sqlite_master").fetchall()
    assert ("t",) in tables
    with pytest.raises(TypeError):  # the target is a setting, never a job's argument
        sql_maintenance.run("ANALYZE", database_url=f"sqlite:///{own}")


# --- write_report ----------------------------------------------------------------------
def test_reports_stay_inside_the_report_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.tasks.report import write_report

    reports = tmp_path / "reports"
    outside = tmp_path / "outside"
    outside.mkdir()
    reports.mkdir()
    (reports / "escape").symlink_to(outside)
    _with_settings(write_report, monkeypatch, report_dir=reports)

    assert write_report.run("team/a.json", rows=[{"n": 1}])["path"] == str(reports / "team/a.json")
    assert write_report.run(str(reports / "b.csv"), rows=[{"n": 1}])["rows"] == 1
    refusals = {
        "/etc/cron.d/x.json": "outside the report folder",
        str(outside / "x.json"): "outside the report folder",
        "escape/x.json": "outside the report folder",
        "../outside/x.json": "'..' is not allowed",
        "team/x.sh": "a report is .json or .csv",
    }
    for path, message in refusals.items():
        with pytest.raises(PermanentTaskError, match=message):
            write_report.run(path, rows=[])
    assert list(outside.iterdir()) == []
    assert sorted(str(p.relative_to(reports)) for p in reports.rglob("*.*")) == [
        "b.csv",
        "team/a.json",
    ]


def test_the_report_folder_defaults_to_the_state_folder() -> None:
    assert Settings(state_dir=Path("/srv/state")).report_dir == Path("/srv/state/reports")
    assert Settings(state_dir=Path("/s"), report_dir=Path("/r")).report_dir == Path("/r")
