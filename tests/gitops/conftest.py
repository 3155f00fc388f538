from __future__ import annotations

from pathlib import Path

import pytest

from .cli import Workspace


@pytest.fixture
def sqlite_workspace(tmp_path: Path, sqlite_url: str) -> Workspace:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    return Workspace(jobs_dir=jobs, db_url=sqlite_url)


@pytest.fixture
def pg_workspace(tmp_path: Path, pg_url: str) -> Workspace:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    return Workspace(jobs_dir=jobs, db_url=pg_url)
