"""The built wheel, installed as an operator installs it, runs every one-shot command.

Not the editable checkout: the wheel is built from a copy of the sources, installed into
a fresh virtual environment under a temporary folder, and run from a working folder
that holds nothing but a copy of `jobs.d/`. Migrations must come from inside the
installed package (an install that needs `migrations/` beside site-packages fails here).
pip's own cache is reused, so the install costs seconds, not minutes, once warm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.settings import DEV_TASK_ALLOWLIST
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.e2e]

EXAMPLE_JOBS = 7  # the jobs declared in the repository's jobs.d/


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The `bin/` folder of a fresh venv that has the wheel (and its dependencies)."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    shutil.copy(REPO_ROOT / "README.md", source)
    shutil.copytree(
        REPO_ROOT / "reconciler",
        source / "reconciler",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    env = _clean_env()
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), "."],
        cwd=source,
        env=env,
    )
    (wheel,) = dist.glob("jobs_reconciler-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=env)
    # This environment's pip installs into the new one (--python), with the wheel's declared
    # dependencies resolved as usual, but no pip bootstrapped there (ensurepip: ~10 s) and
    # no byte-compiling of every dependency (half the install): the commands below compile
    # what they import as they run. The setup took 48.6 s in CI.
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile"]
    _run([*pip, str(wheel)], cwd=tmp_path, env=env)
    return venv / "bin"


def _clean_env() -> dict[str, str]:
    # Nothing may lead the installed program back to the checkout or to another setup.
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RECONCILER_", "PYTHON", "VIRTUAL_ENV"))
    }


def _workdir(tmp_path: Path, name: str) -> Path:
    work = tmp_path / name
    work.mkdir()
    shutil.copytree(REPO_ROOT / "jobs.d", work / "jobs.d")
    return work


def test_the_wheel_runs_upgrade_apply_plan_status_outside_the_checkout(
    installed: Path, tmp_path: Path, pg_url: str
) -> None:
    # The examples call the opt-in built-ins (SQL maintenance, reports): allow them.
    env = {**_clean_env(), "RECONCILER_TASK_ALLOWLIST": ",".join(DEV_TASK_ALLOWLIST)}
    located = _run(
        [str(installed / "python"), "-c", "import reconciler; print(reconciler.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    assert Path(located.strip()).is_relative_to(installed.parent), located
    assert not Path(located.strip()).is_relative_to(REPO_ROOT)
    reconcile = str(installed / "reconcile")

    # SQLite, the default: no URL given; the file lands in the state folder, not in cwd.
    work = _workdir(tmp_path, "sqlite")
    _run([reconcile, "validate"], cwd=work, env=env)
    assert sorted(p.name for p in work.iterdir()) == ["jobs.d"], "validate wrote files"
    _exercise(reconcile, cwd=work, env=env)
    assert sorted(p.name for p in work.iterdir()) == [".reconciler", "jobs.d"]
    assert (work / ".reconciler" / "reconciler.db").is_file()

    # PostgreSQL, this test's own database.
    work = _workdir(tmp_path, "postgresql")
    _exercise(reconcile, cwd=work, env={**env, "RECONCILER_DATABASE_URL": pg_url})
    assert sorted(p.name for p in work.iterdir()) == ["jobs.d"]


def _exercise(reconcile: str, *, cwd: Path, env: dict[str, str]) -> None:
    assert "at head" in _run([reconcile, "db", "upgrade"], cwd=cwd, env=env).lower()
    assert "Applied: 7 add" in _run([reconcile, "apply"], cwd=cwd, env=env)
    plan = json.loads(_run([reconcile, "plan", "--format", "json"], cwd=cwd, env=env))
    assert plan["has_changes"] is False and not any(plan["summary"].values()), plan
    status = json.loads(_run([reconcile, "status", "--format", "json"], cwd=cwd, env=env))
    assert sum(status["jobs_by_status"].values()) == EXAMPLE_JOBS, status
