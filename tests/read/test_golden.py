"""Golden files of the read commands (`get jobs`, `status`, `describe job`, `runs`,
`explain`) in text and JSON, run as the console script over a database seeded by plain SQL
with fixed times (so the output does not depend on when the test runs).

`UPDATE_GOLDEN=1 pytest tests/read` rewrites the files; review the diff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import (
    apscheduler_jobs,
    job_events,
    job_runs,
    quarantined_files,
    reconcile_runs,
    reconciler_instances,
    scheduled_jobs,
)

pytestmark = [pytest.mark.slow]

GOLDEN = Path(__file__).parent / "golden"
RECONCILE = str(Path(sys.executable).parent / "reconcile")
T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
FUTURE = datetime(2099, 1, 1, 2, 0, tzinfo=UTC).timestamp()
COMMANDS = {
    "get-jobs.txt": ["get", "jobs"],
    "get-jobs-wide.txt": ["get", "jobs", "-o", "wide"],
    "get-jobs.json": ["get", "jobs", "-o", "json", "-l", "team=billing"],
    "get-jobs-failing.yaml": ["get", "jobs", "--status", "failing", "-o", "yaml"],
    "status.txt": ["status"],
    "status.json": ["status", "-o", "json"],
    "describe-nightly-report.txt": ["describe", "job", "nightly-report"],
    "describe-invoice-sweep.json": ["describe", "job", "invoice-sweep", "-o", "json"],
    "runs.txt": ["runs", "--since", "100000d"],
    "runs-invoice-sweep.json": ["runs", "invoice-sweep", "--since", "100000d", "-o", "json"],
    "explain-invoice-sweep.txt": [
        "explain",
        "invoice-sweep",
        "--from",
        "2026-11-30T21:57:00Z",
        "--to",
        "2026-11-30T22:06:00Z",
    ],
    "explain-at.json": ["explain", "invoice-sweep", "--at", "2026-11-30T22:01:30Z", "-o", "json"],
}


def _spec(name: str, cron: str, zone: str, labels: dict[str, str], **more: object) -> dict:
    return {
        "name": name,
        "task": "reconciler.tasks.noop",
        "schedule": {"cron": cron},
        "timezone": zone,
        "labels": labels,
        **more,
    }


JOBS = [
    # name, spec, status, source, next fire (epoch or None)
    (
        "invoice-sweep",
        _spec("invoice-sweep", "*/2 * * * *", "UTC", {"team": "billing"}),
        "active",
        "billing/invoice-sweep.yaml",
        FUTURE,
    ),
    (
        "nightly-report",
        _spec(
            "nightly-report",
            "0 3 * * *",
            "Europe/Berlin",
            {"team": "billing"},
            kwargs={"api_token": "s3cret"},
            paused=True,
        ),
        "paused",
        "billing/nightly.yaml",
        None,
    ),
    (
        "health-probe",
        _spec("health-probe", "*/5 * * * *", "UTC", {"team": "ops"}),
        "active",
        "ops/health.yaml",
        T0.timestamp(),
    ),  # due long ago: late
    (
        "broken-file-job",
        _spec("broken-file-job", "0 * * * *", "UTC", {"team": "ops"}),
        "active",
        "ops/broken.yaml",
        FUTURE,
    ),
]
RUNS = [
    # job, slot (minutes after T0), status, reason, lateness
    ("invoice-sweep", -2, "succeeded", None, 0.012),
    ("invoice-sweep", 0, "missed", "misfire", 75.0),
    ("invoice-sweep", 2, "skipped", "overlap", None),
    ("invoice-sweep", 4, "failed", None, 0.02),
    ("health-probe", 0, "succeeded", None, 0.5),
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('golden') / 'state.db'}"
    upgrade_database(url)
    engine = create_sync_engine(url)
    with engine.begin() as connection:
        _seed(connection)
    engine.dispose()
    return url


def _seed(connection: sa.Connection) -> None:
    for name, spec, status, source, next_fire in JOBS:
        connection.execute(
            sa.insert(scheduled_jobs).values(
                name=name,
                spec=spec,
                spec_hash=name.ljust(64, "0"),
                task=spec["task"],
                queue="default",
                labels=spec["labels"],
                status=status,
                source_file=source,
                source_line=1,
                revision="4f2a9c1e",
                revision_dirty=False,
                created_at=T0 - timedelta(days=1),
                updated_at=T0 - timedelta(hours=1),
            )
        )
        connection.execute(
            sa.insert(apscheduler_jobs).values(id=name, next_run_time=next_fire, job_state=b"x")
        )
    for number, (job, minutes, status, reason, lateness) in enumerate(RUNS):
        slot = T0 + timedelta(minutes=minutes)
        ran = status in ("succeeded", "failed")
        connection.execute(
            sa.insert(job_runs).values(
                id=f"00000000-0000-0000-0000-{number:012d}",
                job_name=job,
                scheduled_time=slot,
                status=status,
                reason=reason,
                task="reconciler.tasks.noop",
                queue="default",
                idempotency_key=f"k{number}",
                revision="4f2a9c1e",
                lateness_seconds=lateness,
                started_at=slot + timedelta(seconds=1) if ran else None,
                finished_at=slot + timedelta(seconds=3) if ran else None,
                worker="w1@host" if ran else None,
                error="RuntimeError: boom" if status == "failed" else None,
                updated_at=slot,
            )
        )
    connection.execute(
        sa.insert(apscheduler_jobs).values(id="stray-row", next_run_time=None, job_state=b"x")
    )
    connection.execute(
        sa.insert(quarantined_files).values(
            path="ops/broken.yaml",
            diagnostics=[
                {
                    "path": "ops/broken.yaml",
                    "line": 3,
                    "column": 7,
                    "code": "YAML_SYNTAX",
                    "message": "a mapping value is not allowed here",
                }
            ],
            since=T0,
            last_seen=T0,
        )
    )
    for index, (outcome, added) in enumerate((("applied", 4), ("no_changes", 0), ("error", 0))):
        started = T0 + timedelta(minutes=10 * index)
        connection.execute(
            sa.insert(reconcile_runs).values(
                trigger="watch",
                instance="host-a:101",
                started_at=started,
                finished_at=started + timedelta(seconds=1),
                duration_seconds=0.25,
                outcome=outcome,
                revision=None if outcome == "error" else "4f2a9c1e",
                revision_dirty=False,
                plan_hash="ab" * 32,
                added=added,
            )
        )
    connection.execute(
        sa.insert(reconciler_instances),
        [
            {
                "instance": "host-a:101",
                "role": "leader",
                "epoch": 3,
                "started_at": T0,
                "heartbeat_at": T0 + timedelta(minutes=30),
            },
            {
                "instance": "host-b:202",
                "role": "standby",
                "epoch": 0,
                "started_at": T0,
                "heartbeat_at": T0 + timedelta(minutes=30),
            },
        ],
    )
    connection.execute(
        sa.insert(job_events),
        [
            {
                "job_name": "nightly-report",
                "at": T0 - timedelta(hours=1),
                "action": "update",
                "status": "active",
                "detail": '~ nightly-report: schedule.cron "0 2 * * *" -> "0 3 * * *"',
                "revision": "4f2a9c1e",
            },
            {
                "job_name": "nightly-report",
                "at": T0 - timedelta(minutes=30),
                "action": "pause",
                "status": "paused",
                "detail": "~ nightly-report: paused false -> true",
                "revision": "4f2a9c1e",
            },
        ],
    )


def _run(url: str, argv: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        [RECONCILE, "--database-url", url, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_read_commands_match_their_golden_files(database: str) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = dict(
            zip(COMMANDS, pool.map(lambda a: _run(database, a), COMMANDS.values()), strict=True)
        )
    stale = []
    for name, output in outputs.items():
        path = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.write_text(output)
        if not path.exists() or path.read_text() != output:
            stale.append(name)
    assert not stale, f"differ from tests/read/golden (UPDATE_GOLDEN=1 rewrites): {stale}"
    # What the golden files must say, whatever they were regenerated to:
    assert json.loads(outputs["status.json"])["leader"]["state"] == "stale"
    for name, output in outputs.items():
        assert "+00:00" not in output, name  # one timestamp spelling: Z
        assert "s3cret" not in output, name  # secrets redacted in describe's spec
    described = json.loads(outputs["describe-invoice-sweep.json"])
    assert described["next_fires"][0] == described["next_fire"]  # the scheduler's, as the API
    states = {item["name"]: item["state"] for item in json.loads(outputs["get-jobs.json"])["items"]}
    assert states == {"invoice-sweep": "failing", "nightly-report": "paused"}
