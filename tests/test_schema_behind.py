"""A release whose migration has not run yet: the read commands say so and how to fix
it (`reconcile db upgrade`), instead of a database error about a missing column, run as
users run them (the console script on SQLite, the database made at the migration
before the head by Alembic itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from reconciler.store.migrate import alembic_config

RECONCILE = str(Path(sys.executable).parent / "reconcile")


def test_read_commands_ask_for_the_upgrade_of_a_schema_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    before = ScriptDirectory.from_config(config).get_revision(head).down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["RECONCILER_DATABASE_URL"] = url

    def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RECONCILE, *args], env=env, capture_output=True, text=True)

    behind = reconcile("status")
    assert behind.returncode == 1, behind.stdout + behind.stderr
    assert behind.stderr.strip() == (
        f"error: the database schema is at {before}, this release reads {head}: "
        "run `reconcile db upgrade`"
    )
    assert "Traceback" not in behind.stderr
    assert reconcile("db", "upgrade").returncode == 0
    done = reconcile("status")
    assert done.returncode == 0 and "Last reconcile: never" in done.stdout, done.stderr
