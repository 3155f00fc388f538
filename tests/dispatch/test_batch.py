"""decide_overlaps against the plain rule it implements, on random batches (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.dispatch.batch import active_window, decide_overlaps
from reconciler.dispatch.request import FireRequest, make_request
from reconciler.store.ledger import ActiveRun

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
