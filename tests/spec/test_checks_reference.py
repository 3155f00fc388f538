"""The per-job checks and essence against the way they were done before they were cut
(tests/spec/old_checks.py): for random jobs, random settings and the bench corpus, the
same findings (fields, codes, messages, order), the same essence (keys, their order and
every value's type) and the same hash.

What each test caught (each fault tried, each failed): the never-fires memo keyed by the
months alone (a day rule dropped), a `dst` left with its Nones, `start` spelled by
`isoformat` (an offset of seconds, `Z`), a dict key with a lone surrogate copied as it
is (pydantic's dump replaces it), a float in a nested list not reported (hashed with
orjson's spelling), an argument with a hint of a parameter the signature does not
take checked, the positional values checked after the keyword ones."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.settings import DEFAULT_QUEUES, Settings
from reconciler.spec import catalog, checks
from reconciler.spec.cron import CronSyntaxError, compile_cron
from reconciler.spec.essence import essence, essence_and_hash
from reconciler.spec.model import CronFieldMap, DstPolicySpec, Interval, JobSpec
from reconciler.spec.yamlsafe import parse_yaml

from . import old_checks
from .test_load_work_reference import typed

EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
NOWS = [datetime(2026, 12, 3, tzinfo=UTC), datetime(2033, 1, 1, tzinfo=UTC)]

# --- crons: the never-fires answer ------------------------------------------------------

cron_fields = st.sampled_from(["*", "?", "0", "5", "31", "30", "29", "1-7", "*/10", "L", "LW"])
cron_days = st.sampled_from(
    ["*", "?", "1", "13", "15W", "29", "30", "31", "L", "L-3", "LW", "1,31", "28-31/3"]
)
cron_months = st.sampled_from(["*", "1", "2", "2,4", "4,6,9,11", "FEB", "*/5", "12"])
cron_weekdays = st.sampled_from(
    ["*", "?", "0", "MON", "1-5", "FRI#3", "FRIL", "5L", "SAT,SUN", "MON#5", "2#1"]
)
cron_texts = st.builds(
    lambda second, minute, hour, day, month, weekday: " ".join(
        ([second] if second else []) + [minute, hour, day, month, weekday]
    ),
    st.sampled_from(["", "0", "*/15"]),
    st.sampled_from(["0", "*/7", "59"]),
    st.sampled_from(["0", "3", "8-18"]),
    cron_days,
    cron_months,
    cron_weekdays,
)
cron_maps = st.dictionaries(
    st.sampled_from(["year", "month", "day", "week", "day_of_week", "hour", "minute"]),
    st.sampled_from(
        [
            *["*", "1", "2", "13", "29", "30", "31", "last", "last fri", "2nd mon", "fri"],
            *["mon-fri", "2020", "2030", "2032", "1-3", "*/2", "53", "10"],
        ]
    ),
    min_size=1,
    max_size=4,
)


def compiled(cron: Any) -> Any:
    try:
        return compile_cron(cron)
    except (CronSyntaxError, ValueError, TypeError):
        return None


@EXAMPLES
@given(cron_texts | cron_maps)
def test_whether_a_calendar_allows_a_cron_is_answered_as_before(cron: Any) -> None:
    pattern = compiled(cron)
    if pattern is None:
        return
    # What the memo's key leaves out: a pattern names at least one time of day.
    assert pattern.seconds and pattern.minutes and pattern.hours
    assert checks._calendar_allows(pattern.months, pattern.days) is old_checks.calendar_allows(
        pattern
    )


@EXAMPLES
@given(
    cron=cron_texts | cron_maps,
    start=st.none() | st.sampled_from([datetime(2031, 1, 1), datetime(2040, 6, 1, 12)]),
    zone=st.sampled_from(["UTC", "Europe/Berlin"]),
    now=st.sampled_from(NOWS),
)
def test_cron_fires_answers_as_before(cron: Any, start: Any, zone: str, now: datetime) -> None:
    """For the same cron at two `now`s, with and without a start: no memo keeps an
    answer that depends on the clock."""
    if compiled(cron) is None:
        return
    document: dict[str, Any] = {"name": "j", "task": "a.b", "schedule": {"cron": cron}}
    document |= {"timezone": zone} | ({"start": start} if start else {})
    spec = JobSpec.model_validate(document)
    for moment in (now, *NOWS):
        assert checks.cron_fires(spec, now=moment) is old_checks.cron_fires(spec, now=moment)


# --- task arguments ---------------------------------------------------------------------


class Point:
    """A class hint pydantic has no schema for: `_fits` takes anything."""


def no_params() -> None: ...
def hinted(url: str, timeout: float = 5, count: int = 1, *, flag: bool = False) -> None: ...
def unhinted(a, b=1, *rest, **options): ...
def mixed(
    a: Any, /, b: list[int], c=None, *more: int, d: dict[str, int] | None = None, **kw: str
) -> None: ...
def strange(p: Point, q: int | str = 1) -> None: ...


FUNCTIONS = [no_params, hinted, unhinted, mixed, strange, *catalog.BUILTINS.values()]
NAMES = ["a", "b", "c", "d", "url", "timeout", "count", "flag", "p", "q", "kw", "x", "data"]
NAMES += ["path", "rows", "fields", "append", "statement", "seconds", "message"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)


@EXAMPLES
@given(
    function=st.sampled_from(FUNCTIONS),
    args=st.lists(values, max_size=4),
    kwargs=st.dictionaries(st.sampled_from(NAMES), values, max_size=4),
)
def test_the_arguments_are_checked_as_before(
    function: Any, args: list[Any], kwargs: dict[str, Any]
) -> None:
    params = catalog._parameters(f"app.{function.__name__}", function)
    new = catalog.check_arguments(params, args, kwargs)
    assert new == old_checks.check_arguments(params, args, kwargs)


def test_a_hint_of_no_parameter_is_not_checked() -> None:
    """Hints and parameters may differ (a bound task's `self`): only parameters count."""
    import inspect

    signature = inspect.signature(hinted)
    params = catalog.TaskParameters("app.t", signature, {"url": str, "self": int})
    args: list[Any] = []
    for kwargs in ({"self": "x"}, {"url": 5}, {"url": "u", "self": 1.5}):
        new = catalog.check_arguments(params, args, kwargs)
        assert new == old_checks.check_arguments(params, args, kwargs)


# --- whole jobs: findings, essence, hash ------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1e-7, -0.0, 0.5])
    | st.text(max_size=4)
    | st.sampled_from(["\ud800", "ü", "\U0001f600"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3) | st.sampled_from(["\udc00", "ü", "k"]), inner)
    ),
    max_leaves=8,
)
moments = st.sampled_from(
    [
        datetime(2031, 1, 1, 9),
        datetime(2031, 1, 1, 9, 0, 0, 500),
        datetime(2031, 6, 1, 9, tzinfo=UTC),
        datetime(2031, 6, 1, 9, tzinfo=timezone(timedelta(hours=2))),
        datetime(2031, 6, 1, 9, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=7))),
        datetime(2032, 6, 1, 9, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        "2031-03-01T10:00:00",
        "2031-03-01T10:00:00.25+01:00",
        "2033-03-01T10:00:00Z",
    ]
)
TASKS = ["reconciler.tasks.example_task", "app.tasks.send", "celery.backend_cleanup"]
TASKS += [f"reconciler.tasks.{function.__name__}" for function in catalog.BUILTINS.values()]
schedules = (
    (cron_texts | cron_maps).map(lambda cron: {"cron": cron})
    | st.builds(
        lambda interval: {"interval": interval},
        st.dictionaries(
            st.sampled_from(["weeks", "days", "hours", "minutes", "seconds"]),
            st.integers(0, 90),
            min_size=1,
        ),
    )
    | moments.map(lambda at: {"at": at})
)


@st.composite
def job_documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "job-1",
        "task": draw(st.sampled_from(TASKS)),
        "schedule": draw(schedules),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "previous_names": st.lists(st.sampled_from(["old-1", "old-2"]), max_size=2),
        "args": st.lists(json_values, max_size=3),
        "kwargs": st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=3), json_values),
        "queue": st.sampled_from(["default", "high_priority", "urgent"]),
        "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
        "paused": st.booleans(),
        "misfire_grace_seconds": st.integers(0, 100),
        "coalesce": st.booleans(),
        "max_concurrent_runs": st.integers(1, 3),
        "jitter_seconds": st.integers(0, 10),
        "start": moments,
        "end": moments,
        "retries": st.integers(0, 3),
        "retry_delay_seconds": st.integers(0, 10),
        "time_limit_seconds": st.integers(1, 10),
        "expires_seconds": st.integers(1, 10),
        "idempotency_key": st.sampled_from(["{job}-{date}", "fixed"]),
        "description": st.text(max_size=5) | st.just("\udfff"),
        "owner": st.sampled_from(["ops", "ünï"]),
        "labels": st.dictionaries(
            st.sampled_from(["team", "x", "\udfff", "é"]), st.text(max_size=3), max_size=2
        ),
        "dst": st.fixed_dictionaries(
            {},
            optional={
                "gap": st.sampled_from(["shift", "next", "skip"]),
                "repeat": st.sampled_from(["first", "last", "both"]),
            },
        ),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 2)) == 0:
            document[key] = draw(strategy)
    return document


def valid_spec(document: dict[str, Any]) -> JobSpec | None:
    try:
        return JobSpec.model_validate(document)
    except ValueError:
        return None  # an invalid cron, start after end and the like


def outcome(function: Any, *args: Any, **kwargs: Any) -> Any:
    """What a call returns, or the type of what it raises."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # compared: the same error or none
        return type(error)


SETTINGS = [
    Settings(queues=DEFAULT_QUEUES, task_allowlist=("reconciler.tasks.*", "app.tasks.send")),
    Settings(queues=("default",), task_allowlist=("reconciler.tasks.example_task", "celery.*")),
    Settings(task_allowlist=("*",), sql_statement_allowlist=("VACUUM",), report_dir=Path("/r")),
]


def assert_same_work(spec: JobSpec, now: datetime) -> None:
    for settings_ in SETTINGS:
        found = checks.check_job(spec, settings=settings_, now=now)
        assert found == old_checks.check_job(spec, settings=settings_, now=now)
    new, old = outcome(essence_and_hash, spec), outcome(old_checks.essence_and_hash, spec)
    if isinstance(old, type):
        assert new is old
        return
    assert typed(new[0]) == typed(old[0]) and new[1] == old[1]
    assert typed(essence(spec)) == typed(old[0])


@EXAMPLES
@given(job_documents(), st.sampled_from(NOWS))
def test_random_jobs_are_checked_and_hashed_as_before(document: Any, now: datetime) -> None:
    spec = valid_spec(document)
    if spec is not None:
        assert_same_work(spec, now)


def test_a_key_pydantic_spells_its_own_way_is_left_to_it() -> None:
    """pydantic's JSON dump replaces a lone surrogate in a dict key (not in a value)."""
    document = {"name": "j", "task": "a.b", "schedule": {"cron": "0 3 * * *"}}
    for extra in (
        {"kwargs": {"\udc00": 1}},
        {"labels": {"\udc00": "x"}},
        {"args": [{"\ud800": 0.5}]},
    ):
        spec = JobSpec.model_validate(document | extra)
        assert_same_work(spec, NOWS[0])
        assert "\ufffd" in str(essence(spec))


def corpus_specs() -> list[JobSpec]:
    """The bench corpus's jobs (every schedule kind, its 1,440 crons) and jobs.d's."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    try:
        from corpus import job_text
    finally:
        sys.path.pop(0)
    texts = ["---\n".join(job_text(n) for n in range(k, k + 10)) for k in range(0, 3000, 10)]
    jobs_d = Path(__file__).parents[2] / "jobs.d"
    texts += [path.read_text() for path in sorted(jobs_d.rglob("*.yaml"))]
    specs = []
    for text in texts:
        for document in parse_yaml(text.encode(), path="x.yaml", max_depth=32).documents:
            specs.append(JobSpec.model_validate(document.data))
    return specs


@pytest.mark.parametrize("now", NOWS)
def test_the_corpus_is_checked_and_hashed_as_before(now: datetime) -> None:
    specs = corpus_specs()
    assert len(specs) > 3000
    for spec in specs:
        assert_same_work(spec, now)


# The fields spec.essence converts; every other one it takes as it is.
CONVERTED = {"previous_names", "schedule", "args", "kwargs", "labels", "dst", "start", "end"}


def is_plain(node: dict[str, Any]) -> bool:
    """A JSON Schema of text (no format: a moment is text of a format), an integer, a
    boolean or null, or a choice of these."""
    choices = node.get("anyOf", [node])
    return all(
        choice.get("type") in {"string", "integer", "boolean", "null"} and "format" not in choice
        for choice in choices
    )


def test_the_essence_converts_every_field_that_is_not_plain() -> None:
    """A new field that is not text, an integer or a boolean must be converted by
    spec.essence as pydantic dumps it (and this list extended)."""
    properties = JobSpec.model_json_schema()["properties"]
    assert set(properties) >= CONVERTED
    for name, node in properties.items():
        assert name in CONVERTED or is_plain(node), name
    for model in (CronFieldMap, Interval, DstPolicySpec):  # copied without their Nones
        for name, node in model.model_json_schema()["properties"].items():
            assert is_plain(node), (model, name)
