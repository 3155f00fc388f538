"""The driver-only read of `reconcile get jobs` (reconciler/store/lean_read.py) against the
SQLAlchemy statement the API and the daemon use: the same JobRows, field by field, on
SQLite and PostgreSQL, for every label selector."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.api.resources import create_api_engine
from reconciler.cli import main
from reconciler.core.status import StatusRows
from reconciler.errors import ConfigError
from reconciler.store.db import create_sync_engine
from reconciler.store.lean_read import read_job_rows_lean, read_status_rows_lean
from reconciler.store.migrate import upgrade_database
from reconciler.store.status import (
    JobSelector,
    read_job_rows,
    read_status_rows,
    read_status_rows_async,
)
from reconciler.store.tables import job_runs, scheduled_jobs
from tests.read.test_golden import T0, _seed, _spec

SELECTORS = [
    (),
    (("team", "billing"),),
    (("team", "ops"),),
    (("team", "ops"), ("tier", "gold")),
    (("team", "nobody"),),
    (("no-such-key", "x"),),
]


def _seed_more(connection: sa.Connection) -> None:
    # A job with no scheduler row, no run, two labels and an interval schedule; a second
    # run of a job at an older slot, written after its newest (not the newest by slot).
    spec = _spec("lonely", "0 0 * * *", "Asia/Tokyo", {"team": "ops", "tier": "gold"})
    spec["schedule"] = {"interval": {"minutes": 5}}
    connection.execute(
        sa.insert(scheduled_jobs).values(
            name="lonely",
            spec=spec,
            spec_hash="1" * 64,
            task=spec["task"],
            queue="high_priority",
            labels=spec["labels"],
            status="active",
            source_file="ops/lonely.yaml",
            source_line=4,
            revision=None,
            created_at=T0,
            updated_at=T0,
        )
    )
    connection.execute(
        sa.insert(job_runs).values(
            id="00000000-0000-0000-0000-0000000000ff",
            job_name="health-probe",
            scheduled_time=T0 - timedelta(hours=5),
            status="failed",
            task="reconciler.tasks.noop",
            queue="default",
            idempotency_key="older",
            updated_at=T0,
        )
    )


def _seeded(url: str) -> str:
    upgrade_database(url)
    engine = create_sync_engine(url)
    with engine.begin() as connection:
        _seed(connection)
        _seed_more(connection)
    engine.dispose()
    return url


@pytest.fixture
def seeded(db_url: str) -> str:
    return _seeded(db_url)


def test_the_lean_read_returns_the_rows_of_the_sqlalchemy_statement(seeded: str) -> None:
    engine = create_sync_engine(seeded)
    try:
        for labels in SELECTORS:  # one database for all (a PostgreSQL one costs seconds)
            with engine.connect() as connection:
                expected = read_job_rows(connection, JobSelector(labels=labels))
            assert read_job_rows_lean(seeded, labels=labels) == expected, labels
            if not labels:
                assert len(expected) == 5
                assert {row.name for row in expected if row.last_run_id is not None} == {
                    "invoice-sweep",
                    "health-probe",
                }
    finally:
        engine.dispose()


def test_a_database_without_schema_or_file_is_reported_not_created(
    db_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="no schema"):
        read_job_rows_lean(db_url)
    missing = tmp_path / "nowhere" / "state.db"
    with pytest.raises(ConfigError, match="no schema"):
        read_job_rows_lean(f"sqlite:///{missing}")
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?timeout=3", "mysql://h/db"]
)
def test_urls_it_does_not_read_are_left_to_sqlalchemy(url: str) -> None:
    assert read_job_rows_lean(url) is None


def test_get_jobs_falls_back_to_sqlalchemy_for_a_url_it_does_not_read(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _seeded(sqlite_url) + "?timeout=3"  # a driver option: only SQLAlchemy reads it
    assert read_job_rows_lean(url) is None
    assert main(["--database-url", url, "get", "jobs", "-o", "json"]) == 0
    listed = [item["name"] for item in json.loads(capsys.readouterr().out)["items"]]
    assert listed == sorted(
        ["invoice-sweep", "nightly-report", "health-probe", "broken-file-job", "lonely"]
    )


def test_the_lean_status_read_returns_the_rows_of_the_sqlalchemy_statements(pg_url: str) -> None:
    """`reconcile status` and the API's /api/v1/reconciler read PostgreSQL with asyncpg
    alone (store.lean_read.fetch_status_rows): the same StatusRows as SQLAlchemy's
    statements, instances, reconcile passes (JSON errors), quarantine (JSON
    diagnostics) and foreign scheduler rows included."""
    from tests.api.api_seed import seed

    upgrade_database(pg_url)
    seed(pg_url)
    engine = create_sync_engine(pg_url)
    now = datetime.now(UTC)
    try:
        with engine.connect() as connection:
            expected = read_status_rows(connection, now=now)
    finally:
        engine.dispose()
    assert expected.foreign_rows == ["foreign-job"] and expected.quarantined
    assert expected.last_reconcile and expected.last_reconcile["outcome"] == "error"
    assert expected.last_applied and expected.last_applied["errors"]
    assert expected.groups and expected.flagged  # drift is seeded: a job in full
    assert read_status_rows_lean(pg_url, now=now) == expected
    assert asyncio.run(_read_async(pg_url, now)) == expected  # through the API's pool


async def _read_async(url: str, now: datetime) -> StatusRows:
    engine = create_api_engine(url)
    try:
        async with engine.connect() as connection:
            return await read_status_rows_async(connection, now=now)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["sqlite:///x.db", "sqlite://", "mysql://h/db"])
def test_status_urls_it_does_not_read_are_left_to_sqlalchemy(url: str) -> None:
    assert read_status_rows_lean(url, now=datetime.now(UTC)) is None
