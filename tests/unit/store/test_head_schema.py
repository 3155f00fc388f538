"""The head schema without Alembic (store.head_schema) is Alembic's, exactly: an empty
PostgreSQL database given the recorded script dumps (pg_dump, schema and rows) as one
that Alembic migrated; concurrent starts still migrate one after the other; a database
behind the head is still Alembic's to upgrade."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from reconciler.store import head_schema, migrate
from reconciler.store.migrate import alembic_config, upgrade_database
from tests.conftest import fresh_database
from tests.gitops.cli import postgresql_dump

RECORD_AGAIN = "record it again: python -m reconciler.store.head_schema URL_OF_AN_EMPTY_DATABASE"


def test_the_head_is_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert head_schema.head_revision() == script.get_current_head()


def test_the_script_is_recorded_at_the_head() -> None:
    head = head_schema.head_revision()
    assert head is not None
    assert head_schema.read_head_script(head) is not None, f"head.sql is stale: {RECORD_AGAIN}"


def test_a_script_recorded_at_another_head_is_not_used(tmp_path: Path) -> None:
    head = head_schema.head_revision()
    assert head is not None
    script = head_schema.HEAD_SCRIPT.read_text(encoding="utf-8")
    older = tmp_path / "head.sql"
    older.write_text(script.replace(f" to {head}.", " to 0001."), encoding="utf-8")
    assert head_schema.read_head_script(head, older) is None
    assert head_schema.read_head_script(head, tmp_path / "missing.sql") is None


def _refuse(*_: object) -> None:
    raise AssertionError("Alembic ran")


@pytest.fixture
def alembics_dump() -> Iterator[bytes]:
    with fresh_database() as url:
        upgrade_database(url, by_alembic=True)
        yield postgresql_dump(url)


@pytest.mark.services
def test_the_script_is_what_alembic_executes() -> None:
    with fresh_database() as url:
        recorded = head_schema.record_head_script(url)
    assert recorded == head_schema.HEAD_SCRIPT.read_text(encoding="utf-8"), RECORD_AGAIN


@pytest.mark.services
def test_an_empty_database_gets_alembics_schema_and_rows(
    pg_url: str, alembics_dump: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrate, "_upgrade_by_alembic", _refuse)
    upgrade_database(pg_url)
    assert b"CREATE TABLE public.scheduled_jobs" in alembics_dump
    assert postgresql_dump(pg_url) == alembics_dump, RECORD_AGAIN
    upgrade_database(pg_url)  # at the head: nothing to do, no Alembic
    assert postgresql_dump(pg_url) == alembics_dump


@pytest.mark.services
def test_concurrent_starts_migrate_one_after_the_other(pg_url: str, alembics_dump: bytes) -> None:
    """Four upgrades of one empty database at once, one of them Alembic's: the advisory
    lock serialises them; the first creates the schema, the others find it at the head."""
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def upgrade(by_alembic: bool) -> None:
        start.wait()
        try:
            upgrade_database(pg_url, by_alembic=by_alembic)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=upgrade, args=(n == 3,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert postgresql_dump(pg_url) == alembics_dump


@pytest.mark.services
def test_a_database_behind_the_head_is_upgraded_by_alembic(
    pg_url: str, alembics_dump: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_database(pg_url, "0005")
    ran: list[str] = []
    by_alembic = migrate._upgrade_by_alembic

    def spy(connection: object, url: str, revision: str) -> None:
        ran.append(revision)
        by_alembic(connection, url, revision)  # type: ignore[arg-type]

    monkeypatch.setattr(migrate, "_upgrade_by_alembic", spy)
    upgrade_database(pg_url)
    assert ran == ["head"]
    assert postgresql_dump(pg_url) == alembics_dump


def test_sqlite_is_migrated_by_alembic_then_found_at_the_head(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_database(sqlite_url)
    monkeypatch.setattr(migrate, "_upgrade_by_alembic", _refuse)
    upgrade_database(sqlite_url)


@pytest.mark.services
def test_an_empty_database_is_migrated_without_importing_alembic(pg_url: str) -> None:
    """What the head script is for: a first start does not pay for Alembic's import."""
    code = (
        "import sys; from reconciler.store.migrate import upgrade_database; "
        f"upgrade_database({pg_url!r}); print(sorted(m for m in sys.modules if 'alembic' in m))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert shown.stdout == "[]\n"
