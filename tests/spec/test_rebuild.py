"""rebuild_spec gives the spec validation gives (the parent of a parallel load takes the
child's documents over with it), and the hand-over gives the outcome loaded here."""

from __future__ import annotations

import pickle
import typing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bench.corpus import file_text
from reconciler.settings import Settings
from reconciler.spec import loader
from reconciler.spec.essence import essence
from reconciler.spec.model import (
    CronFieldMap,
    CronSchedule,
    DateSchedule,
    DstPolicySpec,
    Interval,
    IntervalSchedule,
    JobSpec,
)
from reconciler.spec.rebuild import rebuild_spec
from reconciler.spec.yamlsafe import parse_yaml

from .conftest import NOW

ROOT = Path(__file__).resolve().parents[2]


def assert_same(rebuilt: Any, validated: Any) -> None:
    """The same value, down to what only a model's internals show: its type, its fields
    in their order, the fields given (a set: nothing reads it in order), no extra or
    private attributes."""
    assert type(rebuilt) is type(validated)
    if isinstance(validated, BaseModel):
        assert list(rebuilt.__dict__) == list(validated.__dict__)
        assert rebuilt.model_fields_set == validated.model_fields_set
        assert rebuilt.__pydantic_extra__ == validated.__pydantic_extra__
        assert rebuilt.__pydantic_private__ == validated.__pydantic_private__
        for name, value in validated.__dict__.items():
            assert_same(rebuilt.__dict__[name], value)
    elif isinstance(validated, dict):
        assert list(rebuilt) == list(validated)
        for key, value in validated.items():
            assert_same(rebuilt[key], value)
    elif isinstance(validated, list):
        assert len(rebuilt) == len(validated)
        for item, other in zip(rebuilt, validated, strict=True):
            assert_same(item, other)
    elif isinstance(validated, datetime):
        assert (rebuilt, rebuilt.tzinfo) == (validated, validated.tzinfo)
    else:
        assert rebuilt == validated  # never NaN: a valid spec holds finite numbers only


def assert_rebuilds(document: dict[str, Any]) -> None:
    validated = JobSpec.model_validate(document)
    rebuilt = rebuild_spec(document)
    assert rebuilt == validated
    assert_same(rebuilt, validated)
    assert rebuilt.model_dump() == validated.model_dump()
    assert rebuilt.model_dump_json() == validated.model_dump_json()
    assert essence(rebuilt) == essence(validated)
    assert repr(rebuilt) == repr(validated)


names = st.from_regex(r"\A[a-z0-9]([a-z0-9._-]{0,8}[a-z0-9])?\Z")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)
zones = (
    st.none()
    | st.just(UTC)
    | st.builds(timezone, st.integers(-1439, 1439).map(lambda minutes: timedelta(minutes=minutes)))
)
# Text and numbers are moments too (validation parses them): rebuild_spec validates those.
moments = st.datetimes(timezones=zones) | st.sampled_from(
    ["2031-01-01T09:00:00", "2031-01-01T09:00:00+01:00", "2031-01-01 09:00Z", 1_900_000_000]
)
cron_fields = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
cron_values = st.none() | st.sampled_from(["*", "*/5", "1-3", "mon", "last"]) | st.integers(0, 9)
schedules = st.one_of(
    st.fixed_dictionaries(
        {"cron": st.sampled_from(["*/5 * * * *", "0 3 * * *", "*/30 * * * * *", "0 0 1 1 *"])}
    ),
    st.fixed_dictionaries(
        {"cron": st.dictionaries(st.sampled_from(cron_fields), cron_values, max_size=4)}
    ),
    st.fixed_dictionaries(
        {
            "interval": st.dictionaries(
                st.sampled_from(["weeks", "days", "hours", "minutes", "seconds"]),
                st.integers(0, 1000),
                min_size=1,
            )
        }
    ),
    st.fixed_dictionaries({"at": moments}),
)
gaps = st.sampled_from(["shift", "next", "skip"])
repeats = st.sampled_from(["first", "last", "both"])
optional_text = st.none() | st.text(max_size=10)
documents = st.fixed_dictionaries(
    {
        "name": names,
        "task": st.sampled_from(["a.b", "reconciler.tasks.example_task"]),
        "schedule": schedules,
    },
    optional={
        "previous_names": st.lists(names, max_size=2),
        "args": st.lists(json_values, max_size=3),
        "kwargs": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "queue": st.sampled_from(["default", "high_priority"]),
        "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
        "dst": st.none() | st.fixed_dictionaries({}, optional={"gap": gaps, "repeat": repeats}),
        "paused": st.booleans(),
        "misfire_grace_seconds": st.integers(0, 3600),
        "coalesce": st.booleans(),
        "max_concurrent_runs": st.integers(1, 1000),
        "jitter_seconds": st.integers(0, 60),
        "start": st.none() | moments,
        "end": st.none() | moments,
        "retries": st.integers(0, 100),
        "retry_delay_seconds": st.integers(0, 600),
        "time_limit_seconds": st.none() | st.integers(1, 86_400),
        "expires_seconds": st.none() | st.integers(1, 86_400),
        "idempotency_key": st.none() | st.sampled_from(["{job}-{date}", "k-{scheduled_time}"]),
        "description": optional_text,
        "owner": optional_text,
        "labels": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    },
)


# 500 examples: each of these faults in rebuild_spec fails within them (checked by hand):
# the fields given taken from the defaults too, a cron field map or interval left a dict,
# dst left a dict, a factory's list missing, text for `at` or `start` kept.
@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(documents)
def test_a_valid_document_rebuilds_as_validation_builds_it(document: dict[str, Any]) -> None:
    try:
        JobSpec.model_validate(document)
    except ValidationError:
        assume(False)
    assert_rebuilds(document)


def test_the_bench_corpus_and_the_examples_rebuild_as_validated() -> None:
    """Every document of the bench corpus's first 100 files (all its schedule kinds) and
    of jobs.d, as the loader reads them."""
    texts = [file_text(number, 10).encode() for number in range(100)]
    texts += [path.read_bytes() for path in sorted((ROOT / "jobs.d").rglob("*.yaml"))]
    count = 0
    for text in texts:
        for document in parse_yaml(text, path="f.yaml", max_depth=32).documents:
            if document.data is not None:
                assert_rebuilds(document.data)
                count += 1
    assert count > 1000


def test_the_hand_over_gives_the_outcome_loaded_here(settings: Settings) -> None:
    """A file's outcome sent through the pipe (plain, pickled) and taken over: equal to
    the one loaded here, essences and name sites included, a quarantined file too."""
    texts = [file_text(number, 10) for number in range(3)]
    texts.append(file_text(3, 2) + "---\nname: bad\ntask: a.b\nschedule: {cron: nope}\n")
    for number, text in enumerate(texts):
        loaded = loader._load_bytes(
            f"f{number}.yaml", text.encode(), settings=settings, now=NOW, essences=True
        )
        sent = pickle.loads(pickle.dumps(loader._plain_outcome(loaded)))
        outcome = loader._outcome_from_plain(sent)[0]
        assert outcome == loaded[0]
        assert [job.essence for job in outcome.jobs] == [job.essence for job in loaded[0].jobs]
        assert outcome.names == loaded[0].names and outcome.names
    assert outcome.diagnostics


def _held_types(annotation: Any) -> set[type]:
    """The classes an annotation names, through unions, Annotated and generics."""
    found = {annotation} if isinstance(annotation, type) else set()
    for argument in typing.get_args(annotation):
        found |= _held_types(argument)
    return found


def test_the_fields_validation_converts_and_the_validators_are_the_known_ones() -> None:
    """rebuild_spec converts the fields whose type holds a model or a datetime, and
    trusts that no validator changes a value: a model that grows such a field or a new
    validator fails this test until rebuild_spec is made to do the same."""
    converted = {}
    for model in (JobSpec, CronSchedule, IntervalSchedule, DateSchedule):
        converted[model] = {
            name
            for name, field in model.model_fields.items()
            if any(issubclass(held, BaseModel | datetime) for held in _held_types(field.annotation))
        }
    assert converted == {
        JobSpec: {"schedule", "dst", "start", "end"},
        CronSchedule: {"cron"},
        IntervalSchedule: {"interval"},
        DateSchedule: {"at"},
    }
    for flat in (CronFieldMap, Interval, DstPolicySpec):  # plain defaults, nothing nested
        for field in flat.model_fields.values():
            assert field.default_factory is None
            assert not any(
                issubclass(held, BaseModel | datetime) for held in _held_types(field.annotation)
            )
    models = (JobSpec, CronSchedule, Interval, IntervalSchedule, DateSchedule)
    validators = {
        model.__name__: sorted(
            {**model.__pydantic_decorators__.field_validators}
            | {**model.__pydantic_decorators__.model_validators}
        )
        for model in (*models, CronFieldMap, DstPolicySpec)
    }
    assert validators == {  # each one only checks
        "JobSpec": [
            "_consistent",
            "_finite_args",
            "_finite_kwargs",
            "_known_placeholders",
            "_known_zone",
        ],
        "CronSchedule": ["_parse"],
        "Interval": ["_positive"],
        "IntervalSchedule": [],
        "DateSchedule": [],
        "CronFieldMap": [],
        "DstPolicySpec": [],
    }
