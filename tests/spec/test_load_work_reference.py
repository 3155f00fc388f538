"""The per-job work of a load (essence, hash, never-fires check, schedule kind) against
the way it was done before it was cut: for random valid jobs, the same essence (keys,
their order and every value's type), the same hash, the same answer.

What each test caught (each fault tried, each failed): the essence's `previous_names`
left in; the float search skipped for `args` (a float there hashed with orjson's
spelling); the never-fires memo's answer taken for a cron that names years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.triggers import build_trigger
from reconciler.spec import checks, model
from reconciler.spec.cron import compile_cron
from reconciler.spec.essence import essence, essence_and_hash, hash_essence, spec_hash
from reconciler.spec.floats import holds_float
from reconciler.spec.model import (
    MOMENT_SCHEMA,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    JobSpec,
)

from . import old_checks

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def old_essence(spec: JobSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True, exclude={"previous_names"})


def typed(value: Any) -> Any:
    """`value` with every key order and type spelled out, so that == compares them."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    return (type(value).__name__, value)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1e-7, -0.0, 0.5, 1.10])
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
moments = st.sampled_from(
    [
        datetime(2031, 1, 1, 9),
        datetime(2031, 1, 1, 9, 0, 0, 500),
        datetime(2031, 6, 1, 9, tzinfo=UTC),
        datetime(2031, 6, 1, 9, tzinfo=timezone(timedelta(hours=2))),
        "2031-03-01T10:00:00",
        "2031-03-01T10:00:00+01:00",
    ]
)
crons = st.sampled_from(
    [
        "*/5 * * * *",
        "0 3 * * *",
        " 0 3 * * * ",
        "*/30 * * * * *",
        "@daily",
        "0 0 31 2 *",
        "0 0 29 2 *",
        "0 9 * * MON#2",
        {"minute": "*/10", "hour": "8-18"},
        {"minute": 10, "hour": "8-18"},
        {"day": "13", "day_of_week": "fri"},
        {"month": "2", "day": "31"},
        {"year": "2020"},
        {"year": "2032", "month": "2", "day": "29"},
        {"year": "2030", "month": "2", "day": "29"},
    ]
)
schedules = (
    crons.map(lambda cron: {"cron": cron})
    | st.builds(
        lambda m, s: {"interval": {"minutes": m, "seconds": s}},
        st.integers(1, 90),
        st.integers(0, 5),
    )
    | moments.map(lambda at: {"at": at})
)


@st.composite
def job_documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "job-1",
        "task": draw(st.sampled_from(["reconciler.tasks.example_task", "app.tasks.send"])),
        "schedule": draw(schedules),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "previous_names": st.lists(st.sampled_from(["old-1", "old-2"]), max_size=2),
        "args": st.lists(json_values, max_size=3),
        "kwargs": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
        "queue": st.sampled_from(["default", "high_priority"]),
        "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
        "paused": st.booleans(),
        "misfire_grace_seconds": st.integers(0, 100),
        "coalesce": st.booleans(),
        "max_concurrent_runs": st.integers(1, 3),
        "jitter_seconds": st.integers(0, 10),
        "start": moments,
        "retries": st.integers(0, 3),
        "retry_delay_seconds": st.integers(0, 10),
        "time_limit_seconds": st.integers(1, 10),
        "expires_seconds": st.integers(1, 10),
        "idempotency_key": st.sampled_from(["{job}-{date}", "fixed"]),
        "description": st.text(max_size=5),
        "owner": st.sampled_from(["ops", "ünï"]),
        "labels": st.dictionaries(st.sampled_from(["team", "x"]), st.text(max_size=3), max_size=2),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 2)) == 0:
            document[key] = draw(strategy)
    if "cron" in document["schedule"] and draw(st.booleans()):
        document["dst"] = {"gap": "skip"} if draw(st.booleans()) else {"repeat": "both"}
    return document


def valid_spec(document: dict[str, Any]) -> JobSpec | None:
    try:
        return JobSpec.model_validate(document)
    except ValueError:
        return None  # start after end and the like: no essence to compare


@EXAMPLES
@given(job_documents())
def test_the_essence_and_its_hash_are_the_old_ones(document: dict[str, Any]) -> None:
    spec = valid_spec(document)
    if spec is None:
        return
    before = old_essence(spec)
    data, digest = essence_and_hash(spec)
    assert typed(essence(spec)) == typed(before)
    assert typed(data) == typed(before)
    assert digest == hash_essence(before) == spec_hash(spec)
    # What essence_and_hash relies on: only args and kwargs can hold a float.
    assert holds_float(before) == (holds_float(spec.args) or holds_float(spec.kwargs))


def test_only_args_and_kwargs_can_hold_a_number_that_is_not_an_integer() -> None:
    """A new field that could hold a float (or anything) must be searched for floats by
    essence_and_hash too."""
    schema = JobSpec.model_json_schema()
    definitions = schema.get("$defs", {})

    def kinds(node: Any, seen: frozenset[str] = frozenset()) -> set[str]:
        if isinstance(node, list):
            return set().union(*(kinds(item, seen) for item in node))
        if not isinstance(node, dict):
            return set()
        if node.get("anyOf") == MOMENT_SCHEMA["anyOf"]:
            return set()  # a number there is read as a time: the spec holds a datetime
        if node == {} or node.get("type") == "number":
            return {"number or anything"}
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            return set() if name in seen else kinds(definitions[name], seen | {name})
        return set().union(set(), *(kinds(item, seen) for item in node.values()))

    for name, node in schema["properties"].items():
        expected = {"number or anything"} if name in {"args", "kwargs"} else set()
        assert kinds(node) == expected, name


def old_cron_fires(spec: JobSpec, *, now: datetime) -> bool:
    assert isinstance(spec.schedule, CronSchedule)
    cron = spec.schedule.cron
    pattern = compile_cron(cron if isinstance(cron, str) else cron.as_mapping())
    if not old_checks.calendar_allows(pattern):
        return False
    if spec.start is None and pattern.years is None:
        return True
    start = spec.zoned(spec.start) if spec.start is not None else now
    trigger = build_trigger(spec.model_copy(update={"end": None}), with_jitter=False)
    return trigger.get_next_fire_time(None, max(start, now)) is not None


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    cron=crons,
    start=st.none() | moments,
    now=st.sampled_from([datetime(2026, 12, 3, tzinfo=UTC), datetime(2033, 1, 1, tzinfo=UTC)]),
)
def test_never_fires_answers_as_before(cron: Any, start: Any, now: datetime) -> None:
    document = {"name": "j", "task": "app.tasks.send", "schedule": {"cron": cron}}
    if start is not None:
        document["start"] = start
    spec = JobSpec.model_validate(document)
    assert checks.cron_fires(spec, now=now) is old_cron_fires(spec, now=now)


def old_schedule_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [kind for kind in ("cron", "interval", "at") if kind in value]
        return kinds[0] if len(kinds) == 1 else None
    if isinstance(value, CronSchedule | IntervalSchedule | DateSchedule):
        return {"cron": "cron", "interval": "interval", "date": "at"}[value.kind]
    return None


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"cron": "x"},
        {"interval": {}},
        {"at": None},
        {"cron": 1, "at": 2},
        {"cron": 1, "interval": 2},
        {"interval": 1, "at": 2},
        {"cron": 1, "interval": 2, "at": 3},
        {"other": 1},
        {"cron": 1, "other": 2},
        CronSchedule(cron="0 3 * * *"),
        IntervalSchedule.model_validate({"interval": {"minutes": 1}}),
        DateSchedule(at=datetime(2031, 1, 1)),
        None,
        "cron",
        ["cron"],
        1,
    ],
)
def test_the_schedule_kind_is_picked_as_before(value: Any) -> None:
    assert model._schedule_kind(value) == old_schedule_kind(value)
