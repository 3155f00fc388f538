"""Pure parts of firing: ids, the publish call, overlap decisions, backoff. No services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.fires import FIRE_NAMESPACE, fire_id
from reconciler.dispatch.batch import active_window, decide_overlaps
from reconciler.dispatch.dispatcher import Backoff
from reconciler.dispatch.request import make_request, send_task_arguments, soft_time_limit
from reconciler.store.ledger import ActiveRun
from reconciler.worker.context import fire_context

from .helpers import make_payload, make_spec

SLOT = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def request_for(job: str = "billing.sweep", slot: datetime = SLOT, **fields: object):
    payload = make_payload(make_spec(job, **fields))
    return make_request(job=job, payload=payload, scheduled_time=slot, now=slot)


def test_fire_id_is_deterministic_and_zone_independent() -> None:
    berlin = SLOT.astimezone(ZoneInfo("Europe/Berlin"))
    assert (
        request_for(slot=berlin).id == request_for(slot=SLOT).id == fire_id("billing.sweep", SLOT)
    )
    assert request_for(slot=SLOT + timedelta(seconds=1)).id != request_for().id
    assert request_for(job="other.job").id != request_for().id


@settings(max_examples=300, deadline=None)
@given(
    job=st.text(min_size=1, max_size=60),
    slot=st.datetimes(timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin")])),
)
def test_fire_id_is_uuid5_of_the_job_and_slot(job: str, slot: datetime) -> None:
    """The hand-made uuid5 is uuid's own (any name, any zone, folds included)."""
    name = f"{job}@{slot.astimezone(UTC).isoformat()}"
    assert fire_id(job, slot) == str(uuid.uuid5(FIRE_NAMESPACE, name))


def test_naive_slots_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        request_for(slot=datetime(2026, 1, 1))  # naive: the point of the test


def test_send_task_arguments_follow_the_worker_contract() -> None:
    request = request_for(
        args=[1],
        kwargs={"a": 2},
        queue="high_priority",
        retries=3,
        retry_delay_seconds=7,
        time_limit_seconds=60,
        expires_seconds=120,
    )
    call = send_task_arguments(request)
    assert call["name"] == "reconciler.tasks.noop"
    # What Flower and `celery events` show: the job, then its task.
    assert call["shadow"] == "billing.sweep (reconciler.tasks.noop)"
    assert (call["args"], call["kwargs"], call["queue"]) == ([1], {"a": 2}, "high_priority")
    assert call["task_id"] == request.id
    assert call["headers"] == {
        "idempotency_key": request.id,
        "job": "billing.sweep",
        "revision": "rev1",
        "scheduled_time": "2026-03-29T01:30:00+00:00",
        "max_retries": 3,
        "retry_delay_seconds": 7,
    }
    assert call["expires"] == SLOT + timedelta(seconds=120)
    assert (call["time_limit"], call["soft_time_limit"]) == (60, 59.0)


def test_the_worker_reads_back_what_the_dispatcher_publishes() -> None:
    """Both sides of the message contract: a Celery request carrying the published task id
    and headers (as a custom-header attribute set, protocol 2) is the same fire."""
    request = request_for(retries=2, retry_delay_seconds=5)
    call = send_task_arguments(request)
    delivered = SimpleNamespace(
        id=call["task_id"], delivery_info={}, retries=0, hostname="w@h", **call["headers"]
    )
    fire = fire_context(delivered, task=call["name"])
    assert fire is not None and fire.run_id == request.id
    assert (fire.idempotency_key, fire.job, fire.revision) == (request.id, request.job, "rev1")
    assert fire.scheduled_time is not None
    assert datetime.fromisoformat(fire.scheduled_time) == request.slot
    assert (fire.max_retries, fire.retry_delay_seconds) == (2, 5)


def test_no_expiry_and_no_time_limit_stay_unset() -> None:
    call = send_task_arguments(request_for())
    assert call["expires"] is None
    assert call["time_limit"] is None and call["soft_time_limit"] is None


def test_explicit_idempotency_key_template() -> None:
    request = request_for(idempotency_key="{job}:{date}")
    assert request.idempotency_key == "billing.sweep:2026-03-29"


def test_soft_time_limit_stays_below_the_hard_one() -> None:
    assert soft_time_limit(1) == pytest.approx(0.9)
    assert soft_time_limit(2) == 1.0


def test_overlap_counts_active_runs_and_earlier_slots_of_the_batch() -> None:
    first = request_for(slot=SLOT)
    second = request_for(slot=SLOT + timedelta(seconds=1))
    now = SLOT + timedelta(seconds=2)
    assert decide_overlaps([second, first], {}, now=now) == {second.id}
    running = {"billing.sweep": [ActiveRun("x", "billing.sweep", SLOT - timedelta(seconds=5))]}
    assert decide_overlaps([first], running, now=now) == {first.id}


def test_overlap_allows_max_concurrent_runs_and_ignores_stale_runs() -> None:
    request = request_for(max_concurrent_runs=2)
    one = ActiveRun("x", "billing.sweep", SLOT)
    assert decide_overlaps([request], {"billing.sweep": [one]}, now=SLOT) == set()
    limited = request_for(time_limit_seconds=10)
    stale = ActiveRun("y", "billing.sweep", SLOT - timedelta(seconds=11))
    assert decide_overlaps([limited], {"billing.sweep": [stale]}, now=SLOT) == set()
    # The same slot already in the ledger is a duplicate, not an overlap.
    same = ActiveRun(limited.id, "billing.sweep", SLOT)
    assert decide_overlaps([limited], {"billing.sweep": [same]}, now=SLOT) == set()


def test_active_window_covers_retries() -> None:
    payload = make_payload(make_spec(time_limit_seconds=10, retries=2, retry_delay_seconds=5))
    assert active_window(payload) == timedelta(seconds=40)


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=3)
    assert [backoff.delay(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
