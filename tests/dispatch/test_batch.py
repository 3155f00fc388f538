"""decide_overlaps against the plain rule it implements, on random batches (pure), and
the ledger's count of active runs against the runs it reads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.dispatch.batch import active_window, crowded_jobs, decide_overlaps
from reconciler.dispatch.request import FireRequest, make_request
from reconciler.store import ledger
from reconciler.store.ledger import ActiveRun
from reconciler.store.tables import job_runs

from .helpers import make_payload, make_spec

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def plain_rule(requests: list[FireRequest], active: dict[str, list[ActiveRun]]) -> set[str]:
    """Every request in slot order; each one kept counts against the later ones."""
    running = {job: list(runs) for job, runs in active.items()}
    skipped = set()
    for request in sorted(requests, key=lambda r: r.slot):
        since = NOW - active_window(request.payload)
        runs = [
            run
            for run in running.get(request.job, ())
            if run.id != request.id and run.slot >= since
        ]
        if len(runs) >= request.payload["max_concurrent_runs"]:
            skipped.add(request.id)
        else:
            running.setdefault(request.job, []).append(
                ActiveRun(request.id, request.job, request.slot)
            )
    return skipped


PAYLOADS = {n: make_payload(make_spec(max_concurrent_runs=n)) for n in (1, 2, 3)}
fires = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 30), st.sampled_from((1, 2, 3))),
    max_size=25,
)
running = st.lists(st.tuples(st.sampled_from("abcd"), st.integers(-7200, 0)), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fires=fires, running=running)
def test_decide_overlaps_follows_the_plain_rule(fires, running) -> None:
    requests = [
        make_request(
            job=job,
            payload=PAYLOADS[limit],
            scheduled_time=NOW - timedelta(minutes=minutes),
            now=NOW,
        )
        for job, minutes, limit in fires
    ]
    active: dict[str, list[ActiveRun]] = {}
    for n, (job, seconds) in enumerate(running):
        active.setdefault(job, []).append(
            ActiveRun(f"run-{n}", job, NOW + timedelta(seconds=seconds))
        )
    assert decide_overlaps(requests, active, now=NOW) == plain_rule(requests, active)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fires=fires, running=running)
def test_only_crowded_jobs_need_their_runs_read(fires, running) -> None:
    """What the recorder decides from the counts first (crowded_jobs, then the runs of
    those jobs only) is what the plain rule decides from every run."""
    requests = [
        make_request(
            job=job,
            payload=PAYLOADS[limit],
            scheduled_time=NOW - timedelta(minutes=minutes),
            now=NOW,
        )
        for job, minutes, limit in fires
    ]
    active: dict[str, list[ActiveRun]] = {}
    for n, (job, seconds) in enumerate(running):
        active.setdefault(job, []).append(
            ActiveRun(f"run-{n}", job, NOW + timedelta(seconds=seconds))
        )
    crowded = crowded_jobs(requests, {job: len(runs) for job, runs in active.items()})
    mine = [request for request in requests if request.job in crowded]
    theirs = {job: runs for job, runs in active.items() if job in crowded}
    assert decide_overlaps(mine, theirs, now=NOW) == plain_rule(requests, active)


def test_count_active_runs_counts_what_find_active_runs_reads(engine: sa.Engine) -> None:
    """Statuses, expired claims and slots before `since` count as find_active_runs reads."""
    rng = random.Random(17)
    statuses = ["scheduled", "published", "started", "succeeded", "failed", "skipped"]
    rows = []
    for n in range(300):
        slot = NOW - timedelta(seconds=n * 24 + rng.randint(0, 23))  # (job, slot) unique
        rows.append(
            {
                "id": f"count-{n}",
                "job_name": f"job-{rng.randint(0, 9)}",
                "scheduled_time": slot,
                "status": rng.choice(statuses),
                "task": "reconciler.tasks.noop",
                "queue": "default",
                "idempotency_key": f"count-{n}",
                "lease_until": rng.choice([None, NOW - timedelta(seconds=5), NOW + timedelta(5)]),
                "updated_at": slot,
            }
        )
    with engine.begin() as connection:
        connection.execute(sa.insert(job_runs), rows)
        for jobs in ({"job-1"}, {f"job-{n}" for n in range(0, 10, 2)}, {"job-99"}):
            since = NOW - timedelta(seconds=rng.randint(0, 7200))
            found = ledger.find_active_runs(connection, jobs, since=since, now=NOW)
            counts = ledger.count_active_runs(connection, jobs, since=since, now=NOW)
            assert counts == {job: len(runs) for job, runs in found.items()}


def test_a_second_mark_keeps_the_first_publish_time(engine: sa.Engine) -> None:
    """A leader frozen between the broker's confirm and its mark marks its rows at its
    wake, after the next leader's retrier published and marked them: published_at stays
    the first publish's; a row marked for the first time gets the mark's time."""

    def row(n: int) -> dict[str, object]:
        return {
            "id": f"mark-{n}",
            "job_name": "job",
            "scheduled_time": NOW + timedelta(minutes=n),
            "status": "scheduled",
            "task": "reconciler.tasks.noop",
            "queue": "default",
            "idempotency_key": f"mark-{n}",
            "updated_at": NOW,
        }

    first, wake = NOW + timedelta(seconds=1), NOW + timedelta(seconds=11)
    with engine.begin() as connection:
        connection.execute(sa.insert(job_runs), [row(0), row(1)])
        ledger.mark_published(connection, ["mark-0"], now=first)
        ledger.mark_published(connection, ["mark-0", "mark-1"], now=wake)
        selected = connection.execute(sa.select(job_runs.c.id, job_runs.c.published_at))
        found = {fire_id: published_at for fire_id, published_at in selected}
        attempts = connection.execute(
            sa.select(job_runs.c.publish_attempts).where(job_runs.c.id == "mark-0")
        ).scalar()
    assert found == {"mark-0": first, "mark-1": wake}
    assert attempts == 2
