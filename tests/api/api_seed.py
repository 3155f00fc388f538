"""Seed data and helpers of the API tests: rows written by plain SQL inserts through
`reconciler.store.tables` (no code under test involved), settings, problem checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import (
    apscheduler_jobs,
    job_runs,
    quarantined_files,
    reconcile_runs,
    reconciler_instances,
    scheduled_jobs,
)

# Must never appear in any response body, header, log line or metric.
CANARY = "canary-5ecret-9f8e7d"
NOW = datetime.now(UTC).replace(microsecond=0)
NEXT_FIRE = (NOW + timedelta(minutes=5)).timestamp()
CLOSED_PORT = 1  # nothing listens on port 1 of the loopback
ALPHA_RUNS = (
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",
)


def _spec(name: str, schedule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "task": "reconciler.tasks.echo",
        "schedule": schedule,
        "args": [],
        "kwargs": {},
        "queue": "default",
        "timezone": "UTC",
        "paused": False,
        "idempotency_key": "{job}-{date}",
        "labels": {},
        **extra,
    }


def _job(name: str, status: str, spec: dict[str, Any], source: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "spec": spec,
        "spec_hash": "h" * 64,
        "task": spec["task"],
        "queue": spec["queue"],
        "labels": spec["labels"],
        "status": status,
        "source_file": source,
        "source_line": 1,
        "revision": "abc123",
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW,
        **extra,
    }


JOBS = [
    _job(
        "alpha-billing",
        "active",
        _spec(
            "alpha-billing",
            {"cron": "*/5 * * * *"},
            kwargs={"api_key": CANARY, "region": "eu", "nested": {"password": CANARY}},
            args=[{"token": CANARY}],
            labels={"team": "billing", "env": "prod"},
        ),
        "billing/alpha.yaml",
    ),
    _job(
        "beta-report",
        "paused",
        _spec(
            "beta-report",
            {"interval": {"weeks": 0, "days": 0, "hours": 1, "minutes": 30, "seconds": 0}},
            queue="low_priority",
            labels={"team": "data"},
        ),
        "data/beta.yaml",
    ),
    _job(
        "delta-drift",
        "active",
        _spec("delta-drift", {"cron": {"second": "*/30"}}),
        "misc/delta.yaml",
    ),
    _job(
        "epsilon-quarantined",
        "active",
        _spec("epsilon-quarantined", {"cron": "0 3 * * *"}, labels={"team": "billing"}),
        "misc/broken.yaml",
    ),
    _job(
        "gamma-once",
        "completed",
        _spec("gamma-once", {"at": "2026-01-01T09:00:00"}),
        "misc/gamma.yaml",
    ),
]
APS_ROWS = [
    {"id": "alpha-billing", "next_run_time": NEXT_FIRE, "job_state": b"\x80\x04N."},
    {"id": "beta-report", "next_run_time": None, "job_state": b"\x80\x04N."},
    {"id": "epsilon-quarantined", "next_run_time": NEXT_FIRE + 60, "job_state": b"\x80\x04N."},
    {"id": "foreign-job", "next_run_time": NEXT_FIRE, "job_state": b"\x80\x04N."},
]


def _run(run_id: str, minutes_ago: int, status: str, **extra: Any) -> dict[str, Any]:
    scheduled = NOW - timedelta(minutes=minutes_ago)
    return {
        "id": run_id,
        "job_name": "alpha-billing",
        "scheduled_time": scheduled,
        "status": status,
        "task": "reconciler.tasks.echo",
        "queue": "default",
        "idempotency_key": run_id,
        "revision": "abc123",
        "fired_at": scheduled + timedelta(milliseconds=5),
        "published_at": scheduled + timedelta(milliseconds=9),
        "lateness_seconds": 0.009,
        "updated_at": NOW,
        **extra,
    }


RUNS = [
    _run(
        ALPHA_RUNS[0],
        15,
        "succeeded",
        started_at=NOW - timedelta(minutes=15),
        finished_at=NOW - timedelta(minutes=15) + timedelta(seconds=2),
        worker="w1@host",
        result_summary=json.dumps({"token": CANARY, "rows": 3}),
    ),
    _run(
        ALPHA_RUNS[1],
        10,
        "failed",
        started_at=NOW - timedelta(minutes=10),
        finished_at=NOW - timedelta(minutes=9),
        worker="w1@host",
        error=f"ValueError: login failed password={CANARY} for amqp://u:{CANARY}@h/",
    ),
    _run(ALPHA_RUNS[2], 5, "published"),
]


def seed(url: str) -> None:
    """Insert the fixture rows with plain SQL (no code under test involved)."""
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            _insert(connection, scheduled_jobs, JOBS)
            _insert(connection, apscheduler_jobs, APS_ROWS)
            _insert(connection, job_runs, RUNS)
            _insert(
                connection,
                quarantined_files,
                [
                    {
                        "path": "misc/broken.yaml",
                        "since": NOW,
                        "last_seen": NOW,
                        "diagnostics": [
                            {
                                "code": "YAML_SYNTAX",
                                "line": 3,
                                "column": 5,
                                "message": "mapping values are not allowed here",
                            }
                        ],
                    }
                ],
            )
            _insert(
                connection,
                reconcile_runs,
                [
                    {
                        "trigger": "watch",
                        "instance": "r1",
                        "started_at": NOW - timedelta(hours=1),
                        "finished_at": NOW - timedelta(hours=1),
                        "duration_seconds": 0.1,
                        "outcome": "applied",
                        "revision": "abc122",
                        "added": 5,
                    },
                    {
                        "trigger": "resync",
                        "instance": "r1",
                        "started_at": NOW - timedelta(minutes=1),
                        "finished_at": NOW,
                        "duration_seconds": 0.05,
                        "outcome": "no_changes",
                        "revision": "abc123",
                        "quarantined_files": 1,
                        "foreign_rows": 1,
                        "errors": [{"file": "misc/broken.yaml", "secret": CANARY}],
                    },
                    {
                        "trigger": "cli",
                        "instance": "r2",
                        "started_at": NOW,
                        "outcome": "error",
                        "revision": "zzz999",
                    },
                ],
            )
            _insert(
                connection,
                reconciler_instances,
                [
                    {
                        "instance": "r1",
                        "role": "leader",
                        "epoch": 7,
                        "started_at": NOW - timedelta(hours=2),
                        "heartbeat_at": datetime.now(UTC),
                    },
                    {
                        "instance": "r2",
                        "role": "standby",
                        "epoch": 0,
                        "started_at": NOW - timedelta(hours=2),
                        "heartbeat_at": datetime.now(UTC),
                    },
                    {
                        "instance": "r0",
                        "role": "leader",
                        "epoch": 6,
                        "started_at": NOW - timedelta(days=1),
                        "heartbeat_at": NOW - timedelta(hours=3),
                    },
                ],
            )
    finally:
        engine.dispose()


def _insert(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    # One statement per row: the rows set different optional columns.
    for row in rows:
        connection.execute(sa.insert(table).values(**row))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app; services that are not under test point at a closed port."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "result_backend": f"redis://127.0.0.1:{CLOSED_PORT}/0",
        "redis_url": f"redis://127.0.0.1:{CLOSED_PORT}/0",
        "broker_url": f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}//",
        **overrides,
    }
    return Settings(**values)


def problem_of(response: Any) -> dict[str, Any]:
    """The body of an error response, checked to be an RFC 9457 problem document."""
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == response.status_code
    assert "Traceback" not in response.text
    return body
