"""Keyset pages of /api/v1/jobs under every filter, against an independent computation.

The list chooses a page's names first (a subquery of `scheduled_jobs`) and joins the
scheduler rows and newest runs to that page only; on PostgreSQL the label filters use
containment and the prefix a lower bound on the name. Here 90 jobs with varied labels,
queues, statuses, name prefixes (LIKE wildcards among them) and runs are walked page by
page in both orders; the names, each item's state inputs and the totals must equal
what Python computes from the seeded rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from api_seed import NOW, _job, _run, _spec, make_settings
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import apscheduler_jobs, job_runs, scheduled_jobs

pytestmark = pytest.mark.services

STEMS = ("ab", "ab_", "ab%x", "abc", "b", "ba", "zz")
QUEUES = ("default", "high_priority", "scheduled")


def _jobs() -> list[dict[str, Any]]:
    rng = random.Random(15)
    rows = []
    for number in range(90):
        name = f"{STEMS[number % len(STEMS)]}-{number:03d}"
        labels = {"team": f"t{number % 4}"}
        if number % 3 == 0:
            labels["tier"] = "gold"
        spec = _spec(name, {"cron": "*/5 * * * *"}, labels=labels, queue=rng.choice(QUEUES))
        status = "paused" if number % 7 == 0 else "active"
        rows.append(_job(name, status, spec, f"team{number % 4}/jobs.yaml"))
    return rows


JOBS = _jobs()


def _runs() -> list[dict[str, Any]]:
    """Up to four runs for two jobs in three; the newest one's status varies."""
    runs = []
    for number, job in enumerate(JOBS):
        for age in range(number % 3 and number % 5):
            status = ("succeeded", "failed", "started")[(number + age) % 3]
            run = _run(f"{job['name']}-{age}", 10 * age + number % 4, status)
            runs.append(run | {"job_name": job["name"], "idempotency_key": run["id"]})
    return runs


RUNS = _runs()


@pytest.fixture
def client(migrated_db_url: str) -> Iterator[TestClient]:
    engine = create_sync_engine(migrated_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(scheduled_jobs), JOBS)
            connection.execute(
                sa.insert(apscheduler_jobs),
                [
                    {"id": job["name"], "next_run_time": (NOW + timedelta(minutes=5)).timestamp()}
                    | {"job_state": b"x"}
                    for job in JOBS[::2]
                ],
            )
            connection.execute(sa.insert(job_runs), RUNS)
    finally:
        engine.dispose()
    with TestClient(create_app(make_settings(migrated_db_url))) as test_client:
        yield test_client


FILTERS: list[dict[str, str | list[str]]] = [
    {},
    {"label": "team=t1"},
    {"label": ["team=t2", "tier=gold"]},
    {"label": "tier=gold"},
    {"label": "team=nobody"},
    {"label": "tier=t1"},  # a value of another key
    {"status": "paused"},
    {"status": "active", "queue": "scheduled"},
    {"prefix": "ab"},
    {"prefix": "ab_"},  # `_` is a literal, not LIKE's any-character
    {"prefix": "ab%"},
    {"prefix": "b"},
    {"prefix": "zz-08"},
    {"prefix": "zzz"},
    {"prefix": "ab", "label": "team=t3", "status": "active"},
]


def _expected(query: dict[str, str | list[str]]) -> list[str]:
    labels = query.get("label", [])
    pairs = [item.split("=", 1) for item in ([labels] if isinstance(labels, str) else labels)]
    kept = [
        job["name"]
        for job in JOBS
        if all(job["labels"].get(key) == value for key, value in pairs)
        and job["status"] == query.get("status", job["status"])
        and job["queue"] == query.get("queue", job["queue"])
        and job["name"].startswith(str(query.get("prefix", "")))
    ]
    return sorted(kept)


def _newest_runs() -> dict[str, tuple[str, str]]:
    newest: dict[str, dict[str, Any]] = {}
    for run in RUNS:
        known = newest.get(run["job_name"])
        if known is None or run["scheduled_time"] > known["scheduled_time"]:
            newest[run["job_name"]] = run
    return {name: (run["id"], run["status"]) for name, run in newest.items()}


def _walk(client: TestClient, query: dict[str, Any], sort: str, limit: int) -> list[dict]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params = {**query, "sort": sort, "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/api/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("query", FILTERS, ids=str)
def test_every_filter_walked_by_cursor_gives_the_filtered_jobs(
    client: TestClient, query: dict[str, Any]
) -> None:
    expected = _expected(query)
    newest = _newest_runs()
    scheduled = {job["name"] for job in JOBS[::2]}
    for sort, limit in (("name", 7), ("-name", 4), ("name", 100)):
        items = _walk(client, query, sort, limit)
        names = [item["name"] for item in items]
        assert names == (expected if sort == "name" else expected[::-1]), (sort, limit)
    for item in _walk(client, query, "name", 7):
        job = next(job for job in JOBS if job["name"] == item["name"])
        assert (item["labels"], item["queue"], item["status"]) == (
            job["labels"],
            job["queue"],
            job["status"],
        )
        assert (item["next_fire_time"] is not None) == (item["name"] in scheduled)
        detail = client.get(f"/api/v1/jobs/{item['name']}").json()
        last = detail["last_run"]
        assert (None if last is None else (last["id"], last["status"])) == newest.get(item["name"])
        assert detail["state"] == item["state"]
    total = client.get("/api/v1/jobs", params={**query, "limit": "1", "include_total": "true"})
    assert total.json()["total"] == len(expected)
