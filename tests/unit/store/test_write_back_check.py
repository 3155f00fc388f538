"""What lets the daemon's job store carry a row's record over a fire's write-back
(store.jobstore, docs/architecture.md "The no-op plan"): `same_but_next_run_time` and
`ContentCheck.same` say "the same job" only of states that unpickle, with plain
`pickle.loads`, to the same job for the plan (every field SchedulerJob.matches and the
repair's row key read), whatever their next run times; and they say it of every
write-back the scheduler makes of a fire, the first (decoded) and the later ones (the
bytes alone)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.state import scheduler_job
from reconciler.spec.model import JobSpec
from reconciler.store.job_state import StateCodec, same_but_next_run_time
from reconciler.store.scheduler_rows import ContentCheck

SCHEDULES = [
    {"cron": "*/5 * * * *"},
    {"cron": "* * * * * *"},
    {"cron": "0 9 * * 1-5"},
    {"interval": {"seconds": 1}},
    {"interval": {"minutes": 7}},
    {"at": "2031-05-01T09:00:00"},
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text("ab", max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", max_size=3), inner),
    max_leaves=6,
)
MOMENTS = st.none() | st.builds(
    lambda minutes, zone: (
        datetime(2030, 3, 30, tzinfo=UTC).astimezone(ZoneInfo(zone)) + timedelta(minutes=minutes)
    ),
    st.integers(0, 10_000),
    st.sampled_from(ZONES),
)
SPECS = st.builds(
    lambda schedule, zone, data, grace, coalesce: JobSpec.model_validate(
        {
            "name": "job-a",
            "task": "reconciler.tasks.example_task",
            "schedule": schedule,
            "timezone": zone,
            "kwargs": {"data": data},
            "misfire_grace_seconds": grace,
            "coalesce": coalesce,
        }
    ),
    st.sampled_from(SCHEDULES),
    st.sampled_from(ZONES),
    JSON,
    st.sampled_from([1, 60]),
    st.booleans(),
)


def plan_view(state: bytes) -> tuple[Any, ...]:
    """What the plan compares of a row, from plain pickle.loads (independent of the codec
    and of store.scheduler_rows' decoding)."""
    loaded = pickle.loads(state)
    return (
        loaded["func"],
        repr(loaded["trigger"]),
        loaded["kwargs"],
        loaded["misfire_grace_time"],
        loaded["coalesce"],
        loaded["max_instances"],
    )


def fire(codec: StateCodec, state: bytes, moment: datetime | None) -> bytes:
    """The write-back of one fire, as OwnedJobStore makes it: the job reconstituted from
    the row, its next run time moved, its state pickled by the store's codec."""
    job = Job.__new__(Job)
    job.__setstate__(codec.load_state(state))
    job.next_run_time = moment
    return codec.pickle_state(job.__getstate__())


@settings(max_examples=150, deadline=None)
@given(spec=SPECS, moments=st.lists(MOMENTS, min_size=3, max_size=3))
def test_every_write_back_of_a_fire_is_recognised(spec: JobSpec, moments: list[Any]) -> None:
    job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
    written = StateCodec().pickle_job(job, moments[0])  # by an apply
    store = StateCodec()
    check = ContentCheck(store)
    first = fire(store, written, moments[1])
    second = fire(store, first, moments[2])
    assert check.same(written, first)
    # From the second fire on, the bytes alone tell (no state is unpickled).
    assert same_but_next_run_time(first, second)
    assert plan_view(first) == plan_view(second) == plan_view(written)


EDITS = {
    "kwargs": lambda state: state["kwargs"]["payload"].update(queue="high_priority"),
    "nested kwargs": lambda state: state["kwargs"]["payload"]["kwargs"].update(data=["edited"]),
    "misfire": lambda state: state.update(misfire_grace_time=7),
    "coalesce": lambda state: state.update(coalesce=not state["coalesce"]),
    "instances": lambda state: state.update(max_instances=1),
    "func": lambda state: state.update(func="elsewhere:other"),
    "trigger": lambda state: state.update(
        trigger=scheduler_job(
            JobSpec.model_validate(
                {
                    "name": "x",
                    "task": "reconciler.tasks.example_task",
                    "schedule": {"cron": "1 1 * * *"},
                }
            ),
            spec_hash="0" * 64,
            revision=None,
        ).trigger
    ),
    "name (not read by the plan)": lambda state: state.update(name="renamed"),
    "an extra key after the next run time": lambda state: state.update(extra=1),
    "nothing": lambda state: None,
}


@settings(max_examples=200, deadline=None)
@given(
    spec=SPECS,
    moments=st.lists(MOMENTS, min_size=2, max_size=2),
    edit=st.sampled_from(sorted(EDITS)),
    fired=st.booleans(),
    plain=st.booleans(),
)
def test_only_the_same_job_is_recognised(
    spec: JobSpec, moments: list[Any], edit: str, fired: bool, plain: bool
) -> None:
    """Any state edited by hand (`plain`: pickled by plain pickle.dumps, keys in any
    order) or by the scheduler's API: the checks say "same" exactly when the plan reads
    the same job, and the bytes alone never say it wrongly."""
    job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
    store = StateCodec()
    old = StateCodec().pickle_job(job, moments[0])
    if fired:
        old = fire(store, old, moments[0])
    state = pickle.loads(old)
    EDITS[edit](state)
    state["next_run_time"] = moments[1]
    new = pickle.dumps(state, pickle.HIGHEST_PROTOCOL) if plain else store.pickle_state(state)
    same = plan_view(old) == plan_view(new)
    if same_but_next_run_time(old, new):
        assert same
    assert ContentCheck(store).same(old, new) == same


def test_the_next_run_time_is_pickled_last_whatever_the_order_given() -> None:
    spec = JobSpec.model_validate(
        {"name": "a", "task": "reconciler.tasks.example_task", "schedule": {"cron": "*/5 * * * *"}}
    )
    job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
    codec = StateCodec()
    state = pickle.loads(codec.pickle_job(job, None))
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    reordered = {"next_run_time": moment, **{k: v for k, v in state.items() if k != "trigger"}}
    reordered["trigger"] = job.trigger
    reordered["next_run_time"] = moment
    data = codec.pickle_state(reordered)
    loaded = pickle.loads(data)
    assert list(loaded)[-1] == "next_run_time" and loaded["next_run_time"] == moment
    assert same_but_next_run_time(data, codec.pickle_state(dict(reordered, next_run_time=None)))
    without = {k: v for k, v in reordered.items() if k != "next_run_time"}
    assert "next_run_time" not in pickle.loads(codec.pickle_state(without))


def test_bytes_after_the_next_run_time_are_never_trusted() -> None:
    """A state whose bytes go on after the next run time's value (here they set
    `coalesce` again, as hand-made bytes could) is not the same job, though every byte
    before the key is."""
    spec = JobSpec.model_validate(
        {"name": "a", "task": "reconciler.tasks.example_task", "schedule": {"cron": "*/5 * * * *"}}
    )
    job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
    codec = StateCodec()
    for moment in (None, datetime(2030, 1, 1, tzinfo=UTC)):
        old = codec.pickle_job(job, moment)
        new = old[:-2] + b"\x8c\x08coalesce\x89u."  # SHORT_BINUNICODE, NEWFALSE, SETITEMS
        assert pickle.loads(new)["coalesce"] is False and pickle.loads(old)["coalesce"] is True
        assert not same_but_next_run_time(old, new)
        assert not same_but_next_run_time(new, old)
        assert not ContentCheck(codec).same(old, new)
