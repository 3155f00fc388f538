"""The core reads a job spec's fields from the model's `__dict__` on its per-job paths
(core/fires.py fire_payload, core/state.py scheduler_job, core/triggers.py): an attribute
of a pydantic model goes through its `__getattr__` hook, unspecialised. That is only
right while pydantic keeps exactly the field values there, checked here for specs built
every way the code builds them, and the functions answer as they did reading attributes."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.fires import FirePayload, fire_payload
from reconciler.core.memory import CoreMemory
from reconciler.core.state import RecordedSpec, scheduler_job
from reconciler.core.triggers import TriggerMemory, compile_cron, has_open_end
from reconciler.spec.essence import essence_and_hash
from reconciler.spec.model import CronFieldMap, CronSchedule, IntervalSchedule, JobSpec

BASE = {"name": "read-job", "task": "reconciler.tasks.noop"}
VARIANTS: list[dict[str, Any]] = [
    {"schedule": {"cron": "30 2 * * *"}},
    {"schedule": {"cron": "0 9 * * 1"}, "timezone": "Europe/Berlin", "paused": True},
    {"schedule": {"cron": {"hour": "1-3", "minute": 15}}, "dst": {"gap": "skip"}},
    {"schedule": {"cron": {"year": "2030", "minute": "5"}}},
    {"schedule": {"interval": {"minutes": 45}}, "end": "2031-01-01T00:00:00Z"},
    {"schedule": {"at": "2030-04-02T09:00:00"}, "timezone": "America/New_York"},
    {
        "schedule": {"cron": "*/5 * * * *"},
        "args": [1, "two", {"three": [3]}],
        "kwargs": {"key": "value", "n": 3},
        "queue": "high_priority",
        "misfire_grace_seconds": 30,
        "coalesce": False,
        "max_concurrent_runs": 4,
        "jitter_seconds": 7,
        "start": "2026-01-01T00:00:00Z",
        "retries": 3,
        "retry_delay_seconds": 20,
        "time_limit_seconds": 600,
        "expires_seconds": 900,
        "idempotency_key": "{job}-{date}",
        "previous_names": ["old-read-job"],
        "labels": {"team": "t1"},
    },
]


def _specs() -> list[JobSpec]:
    """Each variant validated strictly from Python data, and as a RecordedSpec builds
    it again from its essence (lax, from JSON)."""
    made = []
    for variant in VARIANTS:
        spec = JobSpec.model_validate({**BASE, **variant})
        essence, _ = essence_and_hash(spec)
        recorded = RecordedSpec(
            essence, previous_names=tuple(spec.previous_names), open_ended=has_open_end(spec)
        )
        made += [spec, recorded.fresh()]
    return made


SPECS = _specs()


@pytest.mark.parametrize("spec", SPECS)
def test_a_spec_keeps_its_field_values_and_nothing_else_in_its_dict(spec: JobSpec) -> None:
    assert list(spec.__dict__) == list(JobSpec.model_fields)
    for name in JobSpec.model_fields:
        assert spec.__dict__[name] is getattr(spec, name)
    schedule = spec.schedule
    assert list(schedule.__dict__) == list(type(schedule).model_fields)
    if isinstance(schedule, CronSchedule):
        assert schedule.__dict__["cron"] is schedule.cron


def _payload_by_attributes(spec: JobSpec, spec_hash: str, revision: str | None) -> FirePayload:
    return {
        "task": spec.task,
        "args": list(spec.args),
        "kwargs": dict(spec.kwargs),
        "queue": spec.queue,
        "spec_hash": spec_hash,
        "revision": revision,
        "idempotency_key": spec.idempotency_key,
        "expires_seconds": spec.expires_seconds,
        "time_limit_seconds": spec.time_limit_seconds,
        "retries": spec.retries,
        "retry_delay_seconds": spec.retry_delay_seconds,
        "max_concurrent_runs": spec.max_concurrent_runs,
        "misfire_grace_seconds": spec.misfire_grace_seconds,
    }


def _open_end_by_attributes(spec: JobSpec) -> bool:
    if spec.end is not None or not isinstance(spec.schedule, IntervalSchedule | CronSchedule):
        return False
    if isinstance(spec.schedule, IntervalSchedule):
        return True
    cron = spec.schedule.cron
    return compile_cron(cron if isinstance(cron, str) else cron.as_mapping()).years is None


@pytest.mark.parametrize("spec", SPECS)
def test_the_per_job_reads_answer_as_attribute_reads(spec: JobSpec) -> None:
    payload = fire_payload(spec, spec_hash="h", revision="r")
    assert list(payload.items()) == list(_payload_by_attributes(spec, "h", "r").items())
    assert payload["args"] is not spec.args and payload["kwargs"] is not spec.kwargs
    assert has_open_end(spec) == _open_end_by_attributes(spec)
    for triggers in (None, TriggerMemory(), CoreMemory().triggers):
        job = scheduler_job(spec, spec_hash="h", revision="r", triggers=triggers)
        assert (job.id, job.misfire_grace_time, job.coalesce) == (
            spec.name,
            spec.misfire_grace_seconds,
            spec.coalesce,
        )
        assert job.kwargs == {"job": spec.name, "payload": payload}
        assert job == scheduler_job(spec, spec_hash="h", revision="r")


def test_cron_maps_key_triggers_by_their_values() -> None:
    """Two jobs share a trigger when their cron maps hold the same values, whichever
    object holds them; maps that differ in a field never do."""
    memory = TriggerMemory()

    def job(cron: dict[str, Any]) -> JobSpec:
        return JobSpec.model_validate({**BASE, "schedule": {"cron": cron}})

    one = memory.trigger_and_fingerprint(job({"hour": "3", "minute": "15"}))
    assert memory.trigger_and_fingerprint(job({"minute": "15", "hour": "3"})) is one
    for other in ({"hour": "4", "minute": "15"}, {"hour": "3"}, {"hour": "3", "second": "15"}):
        assert memory.trigger_and_fingerprint(job(other))[1] != one[1]
    assert isinstance(job({"hour": 3}).schedule.cron, CronFieldMap)  # type: ignore[union-attr]
    # An int and a text of the same value: two triggers (their reprs differ), as the
    # JSON text that keyed them before told them apart.
    number = memory.trigger_and_fingerprint(job({"hour": 3, "minute": "15"}))
    assert number[1] != one[1]
    assert number[1] == TriggerMemory().trigger_and_fingerprint(job({"hour": 3, "minute": "15"}))[1]
