"""/health/ready against the real PostgreSQL/SQLite, Redis and RabbitMQ, and a closed port."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_seed import CLOSED_PORT, make_settings
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.api.models import Readiness

pytestmark = pytest.mark.services
REDIS = "redis://127.0.0.1:6379/0"


def test_ready_when_every_service_answers(migrated_db_url: str, amqp_url: str) -> None:
    settings = make_settings(migrated_db_url, redis_url=REDIS, broker_url=amqp_url)
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    report = Readiness.model_validate_json(response.text)
    assert report.status == "ready"
    assert set(report.checks) == {"database", "redis", "broker"}
    for check in report.checks.values():
        assert check.ok and check.error is None and check.latency_ms > 0


@pytest.mark.parametrize("broken", ["redis", "broker", "database"])
def test_unready_when_one_service_is_down(migrated_db_url: str, broken: str) -> None:
    closed = {
        "redis": {"redis_url": f"redis://127.0.0.1:{CLOSED_PORT}/0"},
        "broker": {"broker_url": f"amqp://guest:s3cretpw@127.0.0.1:{CLOSED_PORT}//"},
        "database": {"database_url": f"postgresql://postgres:s3cretpw@127.0.0.1:{CLOSED_PORT}/x"},
    }[broken]
    working = {"redis_url": REDIS, "broker_url": "amqp://guest:guest@127.0.0.1:5672//"}
    database_url = closed.pop("database_url", migrated_db_url)
    settings = make_settings(database_url, **{**working, **closed})
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/ready")
        live = client.get("/health/live")
    assert response.status_code == 503 and live.status_code == 200
    report = Readiness.model_validate_json(response.text)
    assert report.status == "unready"
    assert [name for name, check in report.checks.items() if not check.ok] == [broken]
    assert report.checks[broken].error and "s3cretpw" not in response.text


def test_unready_until_the_schema_is_upgraded(tmp_path: Path, amqp_url: str) -> None:
    """A new release's API beside a database its migration has not reached yet: not
    ready (the database check says to run `reconcile db upgrade`), then ready once it
    has run."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from reconciler.store.migrate import alembic_config, upgrade_database

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    before = ScriptDirectory.from_config(config).get_revision(head).down_revision
    command.upgrade(config, before)
    settings = make_settings(url, redis_url=REDIS, broker_url=amqp_url)
    with TestClient(create_app(settings)) as client:
        behind = client.get("/health/ready")
        assert behind.status_code == 503, behind.text
        check = Readiness.model_validate_json(behind.text).checks["database"]
        assert not check.ok and "reconcile db upgrade" in (check.error or ""), check
        upgrade_database(url)
        assert client.get("/health/ready").status_code == 200
