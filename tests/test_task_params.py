"""Task parameters are checked when job files are validated, offline: unknown, missing
and mistyped arguments, too many positional ones, the powerful built-ins' confinement,
and the tasks of RECONCILER_TASK_MODULES read from their own signatures."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from reconciler.spec import catalog

RECONCILE = str(Path(sys.executable).parent / "reconcile")
HEAD = "name: {name}\ntask: {task}\nschedule: {{cron: '*/5 * * * *'}}\n"


def _validate(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    job = tmp_path / "jobs.yaml"
    job.write_text(text)
    return subprocess.run(
        [RECONCILE, "validate", str(job)],
        capture_output=True,
        text=True,
        env={**os.environ, "RECONCILER_TASK_ALLOWLIST": "reconciler.tasks.*,mine.*", **env},
        cwd=tmp_path,
    )


def _job(name: str, task: str, rest: str) -> str:
    return HEAD.format(name=name, task=task) + rest


@pytest.mark.parametrize("name", sorted(catalog.BUILTINS))
def test_each_declared_signature_is_the_real_tasks(name: str) -> None:
    import importlib

    from reconciler.worker.app import BUILTIN_TASK_MODULES

    tasks = {
        getattr(value, "name", None): value
        for module in BUILTIN_TASK_MODULES
        for value in vars(importlib.import_module(module)).values()
    }
    real = tasks[name].run
    declared = catalog.BUILTINS[name]
    assert list(inspect.signature(real).parameters) == list(inspect.signature(declared).parameters)
    for parameter in inspect.signature(real).parameters.values():
        assert parameter.default == inspect.signature(declared).parameters[parameter.name].default
    hints = typing.get_type_hints(real)
    hints.pop("return", None)
    hints.pop("self", None)  # bound tasks: not an argument of the call
    declared_hints = typing.get_type_hints(declared)
    declared_hints.pop("return", None)
    assert hints == declared_hints


def test_unknown_missing_mistyped_and_surplus_arguments(tmp_path: Path) -> None:
    probe = "reconciler.tasks.http_probe"
    text = "---\n".join(
        [
            _job("typo", probe, "kwargs: {urll: 'http://x/'}\n"),
            _job("mistyped", probe, "kwargs: {url: 'http://x/', timeout: '5'}\n"),
            _job("surplus", probe, "args: ['http://x/', 5, 200, 4]\n"),
            _job("twice", probe, "args: ['http://x/']\nkwargs: {url: 'http://y/'}\n"),
            _job("fine", probe, "args: ['http://x/', 2]\nkwargs: {expect_status: 204}\n"),
            _job("noop-args", "reconciler.tasks.noop", "kwargs: {n: 1}\n"),
        ]
    )
    result = _validate(tmp_path, text)
    assert result.returncode == 1
    path = tmp_path / "jobs.yaml"
    assert result.stdout.splitlines() == [
        f"{path}:4:9: MISSING_ARGUMENT {probe} needs the argument 'url' (in kwargs or args)",
        f"{path}:4:16: UNKNOWN_ARGUMENT kwargs.urll: {probe} has no parameter 'urll' "
        "(it takes: url, timeout, expect_status)",
        f"{path}:9:37: INVALID_ARGUMENT kwargs.timeout: expected float for 'timeout' of {probe}",
        f"{path}:14:7: INVALID_ARGUMENT args: {probe} takes at most 3 positional arguments, "
        "4 given",
        f"{path}:20:15: INVALID_ARGUMENT kwargs.url: also given as a positional argument (args)",
        f"{path}:31:13: UNKNOWN_ARGUMENT kwargs.n: reconciler.tasks.noop has no parameter 'n' "
        "(it takes: none)",
        "1 file, 0 jobs: invalid, 6 errors in 1 file",
    ]


def test_the_powerful_builtins_confinement_is_checked_in_the_file(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            _job("sql", "reconciler.tasks.sql_maintenance", "kwargs: {statement: DELETE FROM x}\n"),
            _job("report", "reconciler.tasks.write_report", "args: [/etc/cron.d/x.json]\n"),
            _job("ok", "reconciler.tasks.write_report", "args: [team/x.json]\n"),
        ]
    )
    result = _validate(tmp_path, text, RECONCILER_REPORT_DIR=str(tmp_path / "reports"))
    assert result.stdout.splitlines()[:2] == [
        f"{tmp_path}/jobs.yaml:4:21: INVALID_ARGUMENT kwargs.statement: statement not allowed: "
        "it must start with one of VACUUM, ANALYZE, REINDEX (RECONCILER_SQL_STATEMENT_ALLOWLIST)",
        f"{tmp_path}/jobs.yaml:9:8: INVALID_ARGUMENT args.0: report path '/etc/cron.d/x.json' is "
        f"outside the report folder {tmp_path / 'reports'} (RECONCILER_REPORT_DIR); "
        "give a path relative to it",
    ]
    assert "2 errors in 1 file" in result.stdout


def test_user_task_modules_are_read_from_their_signatures(tmp_path: Path) -> None:
    package = tmp_path / "mine"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from celery import shared_task\n"
        "@shared_task(bind=True, name='mine.tasks.send')\n"
        "def send(self, to: str, count: int = 1, *, dry_run: bool = False) -> None: ...\n"
    )
    text = "---\n".join(
        [
            _job("good", "mine.tasks.send", "kwargs: {to: ops, count: 2, dry_run: true}\n"),
            _job("bad", "mine.tasks.send", "kwargs: {to: ops, count: many, urgent: true}\n"),
        ]
    )
    env = {"RECONCILER_TASK_MODULES": "mine.tasks", "PYTHONPATH": str(tmp_path)}
    result = _validate(tmp_path, text, **env)
    assert result.stdout.splitlines() == [
        f"{tmp_path}/jobs.yaml:9:26: INVALID_ARGUMENT kwargs.count: expected int for 'count' "
        "of mine.tasks.send",
        f"{tmp_path}/jobs.yaml:9:40: UNKNOWN_ARGUMENT kwargs.urgent: mine.tasks.send has no "
        "parameter 'urgent' (it takes: to, count, dry_run)",
        "1 file, 0 jobs: invalid, 2 errors in 1 file",
    ]
    # Importing the module needs no broker: nothing listens on these URLs.
    broken = _validate(tmp_path, text, RECONCILER_TASK_MODULES="mine.nothing_here")
    assert broken.returncode == 1
    assert "TASK_MODULE_ERROR cannot import 'mine.nothing_here' from RECONCILER_TASK_MODULES" in (
        broken.stdout
    )
