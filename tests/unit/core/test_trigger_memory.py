"""Trigger memories are owned (core/triggers.py TriggerMemory), and the process-wide memos
left are exactly the ones docs/architecture.md lists.

A memory only saves work: every answer with one equals the answer computed directly,
however the questions repeat and interleave; two owners share nothing."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import reconciler
from reconciler.core.memo import IdentityMemo
from reconciler.core.triggers import (
    TriggerMemory,
    build_trigger,
    describe_trigger,
    first_fire_after,
    next_fire_times,
    upcoming_fires,
)
from reconciler.spec.model import JobSpec

START = datetime(2026, 3, 28, tzinfo=UTC)
SCHEDULES = [
    {"cron": "30 2 * * *"},
    {"cron": "*/7 * * * *"},
    {"cron": {"hour": "1-3", "minute": "15"}},
    {"interval": {"minutes": 45}},
    {"at": "2026-04-02T09:00:00"},
]
ZONES = ["Europe/Berlin", "America/New_York", "UTC"]


def job(schedule: dict[str, object], zone: str, **more: object) -> JobSpec:
    fields = {"name": "memory-job", "task": "reconciler.tasks.noop"}
    return JobSpec.model_validate({**fields, "schedule": schedule, "timezone": zone, **more})


specs = st.builds(job, st.sampled_from(SCHEDULES), st.sampled_from(ZONES))
moments = st.integers(0, 10 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))


@settings(max_examples=60, deadline=None)
@given(asked=st.lists(st.tuples(specs, moments, st.integers(1, 4)), min_size=1, max_size=8))
def test_a_memory_answers_as_direct_computation(asked) -> None:
    memory = TriggerMemory()
    for spec, moment, count in asked + asked[::-1]:
        assert next_fire_times(spec, after=moment, count=count, memory=memory) == (
            next_fire_times(spec, after=moment, count=count)
        )
        assert first_fire_after(spec, now=moment, memory=memory) == first_fire_after(
            spec, now=moment
        )
        assert upcoming_fires(spec, after=moment, count=count, memory=memory) == (
            upcoming_fires(spec, after=moment, count=count)
        )
        trigger = build_trigger(spec, memory=memory)
        assert memory.fingerprint(trigger) == describe_trigger(build_trigger(spec))


def test_a_memory_shares_triggers_and_owners_share_nothing() -> None:
    one, other = TriggerMemory(), TriggerMemory()
    first = build_trigger(job(SCHEDULES[0], "Europe/Berlin"), memory=one)
    assert build_trigger(job(SCHEDULES[0], "Europe/Berlin"), memory=one) is first
    assert build_trigger(job(SCHEDULES[0], "Europe/Berlin"), memory=other) is not first
    assert build_trigger(job(SCHEDULES[0], "Europe/Berlin")) is not first  # no memory


def test_a_full_memory_starts_again() -> None:
    memory = TriggerMemory(limit=2)
    times = [
        next_fire_times(job({"cron": f"{m} * * * *"}, "UTC"), after=START, count=1, memory=memory)
        for m in range(1, 6)
    ]
    assert times == [(START.replace(minute=m),) for m in range(1, 6)]
    assert len(memory._triggers) <= 2 and len(memory._fires) <= 2


# The module-level memos docs/architecture.md lists under "Process-wide memos".
PROCESS_WIDE = {
    "reconciler.spec.cron._compile_text",
    "reconciler.spec.cron._compile_map",
    "reconciler.core.zones._CLOCKS",
    "reconciler.spec.checks._cron_calendar",
    "reconciler.spec.checks._calendar_allows",
    "reconciler.spec.catalog.task_catalog",
    "reconciler.spec.catalog._adapter",
    "reconciler.spec.context.code_digest",
    "reconciler.spec.context.library_versions",
    "reconciler.spec.records._imported_catalog_digest",
    "reconciler.store.scheduler_rows.row_code",
}


def test_the_process_wide_memos_are_the_documented_ones() -> None:
    found = set()
    for package in ("core", "spec", "store"):
        path = [str(Path(reconciler.__file__).parent / package)]
        for info in pkgutil.iter_modules(path, f"reconciler.{package}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, functools._lru_cache_wrapper):
                    if value.__module__ == module.__name__:  # not imported from elsewhere
                        found.add(f"{module.__name__}.{name}")
                elif isinstance(value, IdentityMemo) or name == "_CLOCKS":
                    found.add(f"{module.__name__}.{name}")
    assert found == PROCESS_WIDE
    documented = (Path(reconciler.__file__).parent.parent / "docs/architecture.md").read_text()
    for qualified in PROCESS_WIDE:
        assert qualified.rsplit(".", 1)[1] in documented


# Schedules a memory keys alike or apart (core/triggers.py TriggerMemory._schedule_key):
# intervals of one length however spelled, cron texts, dates of one instant; field maps.
lengths = st.sampled_from([60, 3600, 5400, 86_400])
intervals = lengths.flatmap(
    lambda total: st.sampled_from(
        [
            {"seconds": total},
            {"minutes": total // 60},
            {"hours": total // 3600, "seconds": total % 3600},
        ]
    )
)
keyed = st.one_of(
    intervals.map(lambda spelled: {"interval": spelled}),
    st.sampled_from(["*/15 * * * *", "0 9 * * 1-5", "30 2 * * *"]).map(lambda c: {"cron": c}),
    st.sampled_from(SCHEDULES),
    st.sampled_from(  # one instant in three offsets, and a naive wall time
        [
            "2026-04-02T09:00:00+01:00",
            "2026-04-02T08:00:00Z",
            "2026-04-02T08:00:00+00:00",
            "2026-04-02T08:00:00",
        ]
    ).map(lambda at: {"at": at}),
)
bounds = st.sampled_from([{}, {"start": "2026-01-01T00:00:00"}, {"end": "2027-01-01T00:00:00"}])


@settings(max_examples=80, deadline=None)
@given(
    asked=st.lists(
        st.tuples(keyed, st.sampled_from(ZONES), bounds, st.sampled_from([0, 30])),
        min_size=1,
        max_size=10,
    )
)
def test_jobs_keyed_alike_get_the_trigger_built_for_each(asked) -> None:
    """One memory asked for many jobs, in any order, gives each job a trigger that fires
    as its own would (the same fingerprint) and the same first fire."""
    memory = TriggerMemory()
    for schedule, zone, bound, jitter in asked:
        spec = job(schedule, zone, jitter_seconds=jitter, **bound)
        fingerprint = memory.fingerprint(build_trigger(spec, memory=memory))
        assert fingerprint == describe_trigger(build_trigger(spec))
        unjittered = describe_trigger(build_trigger(spec, with_jitter=False))
        assert describe_trigger(memory.trigger(spec, with_jitter=False)) == unjittered
        assert next_fire_times(spec, after=START, count=2, memory=memory) == next_fire_times(
            spec, after=START, count=2
        )
