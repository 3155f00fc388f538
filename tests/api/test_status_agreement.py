"""`reconcile status -o json` (the console script, as users run it) and GET /api/v1/reconciler
(the real app) return the same leader, applied revision, drift and counts on the same
database in every state: leader alive, stale and none; a quarantined file; manual-sync
pending changes (the newest pass of a RECONCILER_SYNC=manual daemon planned changes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from api_seed import make_settings
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import reconcile_runs, reconciler_instances, scheduled_jobs

RECONCILE = str(Path(sys.executable).parent / "reconcile")
AGREED = (
    "leader",
    "applied_revision",
    "applied_revision_dirty",
    "jobs_by_status",
    "jobs_by_state",
    "drift",
    "drifted_jobs",
    "failing_jobs",
    "late_jobs",
    "pending_changes",
)


@pytest.fixture
def api(seeded_url: str) -> Iterator[TestClient]:
    settings = make_settings(seeded_url, api_cache_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield client


def _cli(url: str) -> dict:
    done = subprocess.run(
        [RECONCILE, "--database-url", url, "status", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    document: dict = json.loads(done.stdout)
    return document


def _agree(url: str, api: TestClient) -> dict:
    cli, served = _cli(url), api.get("/api/v1/reconciler").json()
    for key in AGREED:
        assert cli[key] == served[key], key
    assert [q["path"] for q in cli["quarantined_files"]] == [
        q["path"] for q in served["quarantined_files"]
    ]
    for moment in (cli["leader"]["heartbeat_at"], served["leader"]["heartbeat_at"]):
        assert moment is None or moment.endswith("Z")
    return cli


def _execute(url: str, statement: sa.Executable) -> None:
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    finally:
        engine.dispose()


def test_cli_and_api_agree_in_every_state(seeded_url: str, api: TestClient) -> None:
    alive = _agree(seeded_url, api)
    assert alive["leader"]["state"] == "alive"
    assert (alive["leader"]["instance"], alive["leader"]["epoch"]) == ("r1", 7)
    assert alive["applied_revision"] == "abc123"
    assert alive["drift"]["missing_scheduler_row"] == 1
    assert alive["drift"]["foreign_scheduler_row"] == 1
    # The seeded broken file holds a job: it is quarantined, in both.
    assert alive["jobs_by_state"]["quarantined"] >= 1
    assert alive["pending_changes"] == {}  # the newest pass applied: nothing pending

    old = datetime.now(UTC) - timedelta(minutes=5)
    _execute(seeded_url, sa.update(reconciler_instances).values(heartbeat_at=old))
    stale = _agree(seeded_url, api)
    assert stale["leader"]["state"] == "stale" and stale["leader"]["instance"] == "r1"

    _execute(seeded_url, sa.update(reconciler_instances).values(role="standby"))
    none = _agree(seeded_url, api)
    assert none["leader"] == {
        "state": "none",
        "instance": None,
        "epoch": None,
        "heartbeat_at": None,
    }

    # A manual-sync daemon's newest pass planned changes and left them for `apply`.
    _execute(
        seeded_url,
        sa.insert(reconcile_runs).values(
            trigger="resync",
            instance="r1",
            started_at=datetime.now(UTC),
            outcome="planned",
            revision="def456",
            added=2,
            updated=1,
        ),
    )
    pending = _agree(seeded_url, api)
    assert pending["pending_changes"] == {"add": 2, "update": 1}
    assert pending["applied_revision"] == "abc123"  # planned, not applied

    # Every job paused: counts move together.
    _execute(seeded_url, sa.update(scheduled_jobs).values(status="paused"))
    paused = _agree(seeded_url, api)
    assert set(paused["jobs_by_status"]) == {"paused"}
