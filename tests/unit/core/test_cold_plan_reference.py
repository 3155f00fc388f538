"""The cut cold plan (helper planfast2) against the code it replaced, kept verbatim in
old_cold_plan.py, on many generated jobs: the same adds, plan hash and summary; the same
triggers, fingerprints and scheduler jobs (their payloads' keys in the same order:
pickled into `apscheduler_jobs`); the same open-endedness; the same desired jobs."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.dst import WallClockCronTrigger
from reconciler.core.memory import CoreMemory
from reconciler.core.plan import _no_fires, _previews, make_plan, plan_hash
from reconciler.core.state import (
    ActualState,
    DesiredJob,
    DesiredState,
    RecordedSpec,
    Revision,
    scheduler_job,
)
from reconciler.core.triggers import TriggerMemory, _build, has_open_end
from reconciler.engine.reconcile import ReconcileCaches, _file_jobs
from reconciler.spec.essence import essence_and_hash
from reconciler.spec.loader import FileOutcome, LoadedJob
from reconciler.spec.model import JobSpec
from tests.unit.core import old_cold_plan as old

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "America/New_York")
MOMENTS = ("2020-01-01T00:00:00Z", "2026-11-22T12:00:00", "2031-03-01T09:30:00+02:00")

_crons = st.one_of(
    st.builds(
        lambda m, h, dow: f"{m} {h} * * {dow}",
        st.sampled_from(["0", "*/5", "15,45", "*"]),
        st.sampled_from(["*", "3", "8-18"]),
        st.sampled_from(["*", "1", "1-5"]),
    ),
    st.sampled_from(["*/30 * * * * *", "0 0 1 1 * 2024", "0 9 * * * 2030", "@daily"]),
    st.fixed_dictionaries(
        {},
        optional={
            "minute": st.sampled_from(["*/5", "15", 7]),
            "hour": st.sampled_from(["8-18", "3", 4]),
            "year": st.sampled_from(["2025", "2030", "*"]),
            "second": st.sampled_from(["0", "*/30"]),
        },
    ).filter(bool),
)
_schedules = st.one_of(
    st.builds(lambda cron: {"cron": cron}, _crons),
    st.builds(lambda n: {"interval": {"minutes": n}}, st.integers(1, 600)),
    st.builds(lambda at: {"at": at}, st.sampled_from(MOMENTS)),
)


@st.composite
def _spec_data(draw: st.DrawFn, number: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": f"job-{number:04d}",
        "task": "reconciler.tasks.example_task",
        "schedule": draw(_schedules),
        "timezone": draw(st.sampled_from(ZONES)),
    }
    optional: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "paused": st.booleans(),
                "end": st.sampled_from(MOMENTS),
                "start": st.sampled_from(MOMENTS[:2]),
                "jitter_seconds": st.integers(0, 30),
                "dst": st.sampled_from([{"gap": "skip"}, {"repeat": "both"}]),
                "args": st.lists(st.integers(), max_size=2),
                "kwargs": st.dictionaries(st.sampled_from("abc"), st.integers(), max_size=2),
                "coalesce": st.booleans(),
                "misfire_grace_seconds": st.integers(1, 300),
                "idempotency_key": st.just("{job}-{date}"),
            },
        )
    )
    data.update(optional)
    if "cron" not in data["schedule"]:
        data.pop("dst", None)
    return data


def _specs(count: int) -> st.SearchStrategy[list[JobSpec]]:
    def valid(data: dict[str, Any]) -> JobSpec | None:
        try:
            return JobSpec.model_validate(data)
        except ValueError:
            return None  # a combination the models refuse (an end before the start ...)

    return st.tuples(*(_spec_data(n) for n in range(count))).map(
        lambda all_data: [s for s in map(valid, all_data) if s is not None]
    )


@settings(max_examples=60, deadline=None)
@given(_specs(8))
def test_triggers_open_ends_and_scheduler_jobs_are_the_old_ones(specs: list[JobSpec]) -> None:
    new_memory, old_memory = TriggerMemory(), old.OldTriggerMemory()
    for spec in specs:
        expected = old.has_open_end(spec)
        assert has_open_end(spec) is expected
        assert new_memory.open_end(spec) is expected
        assert new_memory.open_end(spec) is expected  # remembered
        for jitter in (True, False):
            made, was = _build(spec, with_jitter=jitter), old._build(spec, with_jitter=jitter)
            assert type(made) is type(was) and repr(made) == repr(was)
            assert made.__getstate__() == was.__getstate__()
            if isinstance(made, WallClockCronTrigger):
                assert repr(made) == old.old_repr(made)
        found, known = (
            new_memory.trigger_and_fingerprint(spec),
            old_memory.trigger_and_fingerprint(spec),
        )
        assert found[1] == known[1] and repr(found[0]) == repr(known[0])
        assert new_memory.trigger_and_fingerprint(spec) is found
        for triggers, old_triggers in ((None, None), (new_memory, old_memory)):
            job = scheduler_job(spec, spec_hash="h", revision="r", triggers=triggers)
            was_job = old.old_scheduler_job(
                spec, spec_hash="h", revision="r", triggers=old_triggers
            )
            assert job == was_job
            assert list(job.kwargs["payload"].items()) == list(was_job.kwargs["payload"].items())
            assert pickle.dumps(job.kwargs) == pickle.dumps(was_job.kwargs)


def _desired_state(specs: list[JobSpec], recorded: set[int]) -> DesiredState:
    jobs = {}
    for number, spec in enumerate(specs):
        found: JobSpec | RecordedSpec = spec
        if number in recorded:
            essence, _ = essence_and_hash(spec)
            found = RecordedSpec(
                essence, previous_names=tuple(spec.previous_names), open_ended=has_open_end(spec)
            )
        jobs[spec.name] = DesiredJob.of(found, source=f"team{number % 3}/jobs.yaml", line=number)
    return DesiredState(jobs=jobs, revision=Revision(commit="c0ffee", dirty=bool(len(specs) % 2)))


@settings(max_examples=60, deadline=None)
@given(_specs(10), st.sets(st.integers(0, 9)), st.booleans())
def test_a_cold_plan_holds_the_old_adds(
    specs: list[JobSpec], recorded: set[int], preview: bool
) -> None:
    desired = _desired_state(specs, recorded)
    empty = ActualState(inventory={}, scheduler={})
    plan = make_plan(desired, empty, now=NOW, preview_fires=preview)
    memory = CoreMemory()
    fires = _previews(memory.triggers) if preview else _no_fires
    expected = [
        old._add(desired.jobs[name], desired.revision, now=NOW, fires=fires, memory=memory)
        for name in sorted(desired.jobs)
    ]
    assert list(plan.changes) == expected
    for change, was in zip(plan.changes, expected, strict=True):
        assert change.reason == was.reason and change.after_key == was.after_key
        assert change.target is not None and was.target is not None
        assert change.target.status is was.target.status
        assert list(change.target.scheduler.kwargs["payload"].items()) == list(
            was.target.scheduler.kwargs["payload"].items()
        )
    assert plan.plan_hash == plan_hash(expected)
    assert plan.summary == old._summary(expected)
    assert list(plan.summary) == list(old._summary(expected))


@settings(max_examples=40, deadline=None)
@given(_specs(8), st.booleans())
def test_the_desired_jobs_of_a_file_are_the_old_ones(specs: list[JobSpec], compact: bool) -> None:
    jobs = []
    for number, spec in enumerate(specs):
        essence = essence_and_hash(spec) if number % 4 else None  # not always computed
        jobs.append(LoadedJob(spec, "team0/jobs.yaml", number + 1, 1, essence))
    outcome = FileOutcome("team0/jobs.yaml", tuple(jobs), (), (), "digest", False)
    new_caches, old_caches = ReconcileCaches(compact=compact), ReconcileCaches(compact=compact)
    made, was = _file_jobs(outcome, new_caches), old.old_file_jobs(outcome, old_caches)
    assert [name for name, _ in made] == [name for name, _ in was]
    for (_, job), (_, old_job) in zip(made, was, strict=True):
        assert job == old_job
        assert job.essence == old_job.essence and job.open_ended is old_job.open_ended
