"""A jobs folder and a database, driven through the real `reconcile` command line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from reconciler.store.db import create_sync_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def job_yaml(
    name: str,
    *,
    cron: str = "*/5 * * * *",
    task: str = "reconciler.tasks.example_task",
    **fields: object,
) -> str:
    lines = [
        f"name: {name}",
        f"task: {task}",
        f'schedule: {{cron: "{cron}"}}',
    ]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    code: int
    out: str
    err: str


class Workspace:
    def __init__(self, root: Path, db_url: str) -> None:
        self.jobs_dir = root / "jobs.d"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url
        self.engine = create_sync_engine(db_url)

    def write(self, relative: str, text: str) -> Path:
        path = self.jobs_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def remove(self, relative: str) -> None:
        (self.jobs_dir / relative).unlink()

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RECONCILER_DATABASE_URL=self.db_url,
            RECONCILER_JOBS_DIR=str(self.jobs_dir),
            **extra,
        )
        return env

    def cli(self, *args: str, **env: str) -> Result:
        """Run `reconcile ARGS` as a real process (exit code, stdout, stderr)."""
        done = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def spawn(self, args: Sequence[str], **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", *args],
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql), params)]

    def execute(self, sql: str, **params: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(sql), params)

    def close(self) -> None:
        self.engine.dispose()
