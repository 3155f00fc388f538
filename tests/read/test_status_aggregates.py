"""The status summary (`reconcile status`, GET /api/v1/reconciler) counts the jobs in the
database and reads in full only the jobs it lists (failing, late, drifted): over random
job sets its counts and lists are those of the straightforward computation, every job
judged one by one in Python (`_expected`, written out here from the rules of
reconciler/core/status.py's docstring and README), on SQLite and PostgreSQL, through
the SQLAlchemy read, the driver-only read (PostgreSQL) and the API's async read; and
only the listed jobs are read in full."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from reconciler.api.resources import create_api_engine
from reconciler.core.status import build_status
from reconciler.store.db import create_sync_engine
from reconciler.store.lean_read import read_status_rows_lean
from reconciler.store.migrate import upgrade_database
from reconciler.store.status import read_status_rows, read_status_rows_async
from reconciler.store.tables import apscheduler_jobs, job_runs, quarantined_files, scheduled_jobs

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RUN_STATUSES = ["succeeded", "failed", "expired", "started", "missed", "skipped", "retried"]
FILES = ["a.yaml", "b.yaml", "c.yaml", "d.yaml"]
STATE_ORDER = ["quarantined", "failing", "late", "paused", "completed", "active"]
DRIFT_KINDS = [
    "missing_scheduler_row",
    "scheduler_paused",
    "scheduler_active",
    "unexpected_scheduler_row",
    "foreign_scheduler_row",
]

COMPARED = (
    "jobs_by_status",
    "jobs_by_state",
    "drift",
    "drifted_jobs",
    "failing_jobs",
    "late_jobs",
)


def _job_set(rng: random.Random) -> dict[str, Any]:
    """Jobs (status, file, scheduler row and next fire), their runs, quarantined files,
    foreign scheduler rows; next fires around the late boundary (60 s) and far from it."""
    quarantined = set(rng.sample(FILES, rng.randint(0, 2)))
    jobs, runs = [], []
    for n in range(rng.randint(0, 60)):
        name = f"job-{n:03d}-{rng.choice('abcxyz')}"
        status = rng.choice(["active"] * 5 + ["paused", "completed"])
        scheduled = rng.random() < 0.85
        next_fire = None
        if scheduled and rng.random() < 0.85:
            offset = rng.choice([-3600, -61, -59.5, 30, 3600, 86400 * 400])
            next_fire = NOW.timestamp() + offset + rng.random() * 0.25
        jobs.append((name, status, rng.choice(FILES), scheduled, next_fire))
        slots = rng.sample(range(1, 500), rng.choice([0, 0, 1, 2, 5]))
        for slot in slots:  # written in random order: the newest by slot is not the last
            runs.append((name, NOW - timedelta(minutes=slot), rng.choice(RUN_STATUSES)))
    foreign = [f"foreign-{n}" for n in range(rng.randint(0, 2))]
    return {"jobs": jobs, "runs": runs, "quarantined": quarantined, "foreign": foreign}


def _expected(data: dict[str, Any]) -> dict[str, Any]:
    newest: dict[str, tuple[datetime, str, str]] = {}
    run_ids = _run_ids(data)
    for name, slot, status in data["runs"]:
        if name not in newest or slot > newest[name][0]:
            newest[name] = (slot, status, run_ids[(name, slot)])
    by_status: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    drifted: list[tuple[str, str]] = []
    failing, late = [], []
    for name, status, source, scheduled, next_fire in sorted(data["jobs"]):
        by_status[status] += 1
        last = newest.get(name)
        if source in data["quarantined"]:
            state = "quarantined"
        elif status in ("paused", "completed"):
            state = status
        elif last is not None and last[1] in ("failed", "expired"):
            state = "failing"
        elif status == "active" and next_fire is not None and NOW.timestamp() - next_fire > 60:
            state = "late"
        else:
            state = "active"
        by_state[state] += 1
        shown = status == "active" and next_fire is not None
        brief = {
            "job": name,
            "state": state,
            "next_fire": datetime.fromtimestamp(next_fire, UTC) if shown else None,
            "last_run": last[2] if last else None,
            "last_run_status": last[1] if last else None,
            "last_run_slot": last[0] if last else None,
        }
        if state == "failing":
            failing.append(brief)
        if state == "late":
            late.append(brief)
        if status == "completed":
            kind = "unexpected_scheduler_row" if next_fire is not None else None
        elif not scheduled:
            kind = "missing_scheduler_row"
        elif status == "active" and next_fire is None:
            kind = "scheduler_paused"
        elif status == "paused" and next_fire is not None:
            kind = "scheduler_active"
        else:
            kind = None
        if kind:
            drifted.append((name, kind))
    drifted += [(name, "foreign_scheduler_row") for name in data["foreign"]]
    kinds = Counter(kind for _, kind in drifted)
    return {
        "jobs_by_status": dict(sorted(by_status.items())),
        "jobs_by_state": {state: by_state[state] for state in STATE_ORDER},
        "drift": {kind: kinds[kind] for kind in DRIFT_KINDS},
        "drifted_jobs": [{"job": name, "drift": kind} for name, kind in sorted(drifted)],
        "failing_jobs": failing,
        "late_jobs": late,
    }


def _run_ids(data: dict[str, Any]) -> dict[tuple[str, datetime], str]:
    return {
        (name, slot): str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}@{slot.isoformat()}"))
        for name, slot, _ in data["runs"]
    }


def _write(url: str, data: dict[str, Any]) -> None:
    engine = create_sync_engine(url)
    run_ids = _run_ids(data)
    try:
        with engine.begin() as connection:
            for table in (job_runs, apscheduler_jobs, quarantined_files, scheduled_jobs):
                connection.execute(sa.delete(table))
            for name, status, source, scheduled, next_fire in data["jobs"]:
                connection.execute(
                    sa.insert(scheduled_jobs).values(
                        name=name,
                        spec={"name": name, "schedule": {"cron": "* * * * *"}, "timezone": "UTC"},
                        spec_hash="0" * 64,
                        task="reconciler.tasks.noop",
                        queue="default",
                        labels={},
                        status=status,
                        source_file=source,
                        source_line=1,
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
                if scheduled:
                    connection.execute(
                        sa.insert(apscheduler_jobs).values(
                            id=name, next_run_time=next_fire, job_state=b"x"
                        )
                    )
            for name in data["foreign"]:
                connection.execute(
                    sa.insert(apscheduler_jobs).values(id=name, next_run_time=1.0, job_state=b"x")
                )
            for path in data["quarantined"]:
                connection.execute(
                    sa.insert(quarantined_files).values(
                        path=path, diagnostics=[], since=NOW, last_seen=NOW
                    )
                )
            for name, slot, status in data["runs"]:
                connection.execute(
                    sa.insert(job_runs).values(
                        id=run_ids[(name, slot)],
                        job_name=name,
                        scheduled_time=slot,
                        status=status,
                        task="reconciler.tasks.noop",
                        queue="default",
                        idempotency_key=f"{name}:{slot}",
                        updated_at=NOW,
                    )
                )
    finally:
        engine.dispose()


def _summary(rows: Any) -> dict[str, Any]:
    document = build_status(rows, now=NOW).document()
    return {key: document[key] for key in COMPARED}


async def _read_async(url: str) -> Any:
    engine = create_api_engine(url)
    try:
        async with engine.connect() as connection:
            return await read_status_rows_async(connection, now=NOW)
    finally:
        await engine.dispose()


def test_the_summary_counts_and_lists_what_judging_every_job_gives(db_url: str) -> None:
    """...and the jobs read in full are exactly the failing, late and drifted ones (a
    superset would give the same summary but cost what it saves); the others come back
    as counts."""
    upgrade_database(db_url)
    rng = random.Random(15)
    engine = create_sync_engine(db_url)
    try:
        for _ in range(16):
            data = _job_set(rng)
            _write(db_url, data)
            expected = _expected(data)
            with engine.connect() as connection:
                reads = [read_status_rows(connection, now=NOW, details=d) for d in (True, False)]
            reads.append(asyncio.run(_read_async(db_url)))
            if db_url.startswith("postgresql"):
                for details in (True, False):
                    lean = read_status_rows_lean(db_url, now=NOW, details=details)
                    assert lean is not None
                    reads.append(lean)
            for rows in reads:
                assert _summary(rows) == expected
                _only_the_listed_in_full(rows, data, expected)
    finally:
        engine.dispose()


def _only_the_listed_in_full(rows: Any, data: dict[str, Any], expected: dict[str, Any]) -> None:
    listed = {item["job"] for key in ("failing_jobs", "late_jobs") for item in expected[key]}
    listed |= {item["job"] for item in expected["drifted_jobs"]} - set(data["foreign"])
    assert {row.name for row in rows.flagged} == listed
    assert sum(group.jobs for group in rows.groups) == len(data["jobs"]) - len(listed)
