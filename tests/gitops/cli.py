"""Running `reconcile` as a user does: the console script in a subprocess, with its own
environment, against a real database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import TEST_TASK_ALLOWLIST

RECONCILE = str(Path(sys.executable).with_name("reconcile"))


@dataclass
class Workspace:
    """A jobs folder and a database, and `reconcile` pointed at both."""

    jobs_dir: Path
    db_url: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        env.update(
            RECONCILER_DATABASE_URL=self.db_url,
            RECONCILER_JOBS_DIR=str(self.jobs_dir),
            RECONCILER_TASK_ALLOWLIST=TEST_TASK_ALLOWLIST,  # the demo task `noop`
        )
        return env

    def run(self, *args: str, stdin: str | None = "") -> subprocess.CompletedProcess[str]:
        env = self.env()
        return subprocess.run(
            [RECONCILE, *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def write(self, relative: str, text: str) -> Path:
        path = self.jobs_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.db_url.replace("postgresql://", "postgresql+psycopg://"))

    def rows(self, sql: str) -> list[sa.Row[object]]:
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return list(connection.execute(sa.text(sql)))
        finally:
            engine.dispose()


def job(name: str, *, cron: str = "*/5 * * * *", **fields: object) -> str:
    lines = [f"name: {name}", "task: reconciler.tasks.noop", f'schedule: {{cron: "{cron}"}}']
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def database_image(db_url: str) -> str:
    """Everything a database holds, as one digest: the SQLite file's bytes (and whether
    it exists at all), or PostgreSQL's schema and data as pg_dump writes them."""
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        if not path.exists():
            return "(no file)"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return hashlib.sha256(postgresql_dump(db_url)).hexdigest()


def postgresql_dump(db_url: str) -> bytes:
    """A PostgreSQL database's schema and data, as pg_dump writes them (owners and
    grants left out)."""
    dump = subprocess.run(
        ["pg_dump", "--no-owner", "--no-privileges", db_url],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    # pg_dump writes a random \restrict key into every dump (CVE-2025-8714): not data.
    lines = [
        line for line in dump.splitlines() if not line.startswith((b"\\restrict", b"\\unrestrict"))
    ]
    return b"\n".join(lines)
