"""The quicker validation against the old one (tests/spec/old_model.py, old_cron.py):
for random valid and invalid documents, the bench corpus and the examples, the same spec
(its fields, their types, the fields given, its dumps and repr) or the same errors (type,
location, message, context, input), strict as the loader validates and lax as the
gauges do; and the same cron pattern or the same refusal for random cron texts."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bench.corpus import file_text
from reconciler.spec import cron, loader
from reconciler.spec.model import JobSpec
from reconciler.spec.plainjson import MAX_DEPTH, is_plain_json
from reconciler.spec.yamlsafe import parse_yaml

from . import old_cron, old_model
from .test_rebuild import documents as valid_documents

ROOT = Path(__file__).resolve().parents[2]


def same_value(new: Any, old: Any) -> None:
    """Equal down to the types: models of the two modules by class name and fields."""
    if isinstance(old, BaseModel):
        assert type(new).__name__ == type(old).__name__
        assert list(new.__dict__) == list(old.__dict__)
        assert new.model_fields_set == old.model_fields_set
        assert new.__pydantic_extra__ == old.__pydantic_extra__
        for name, value in old.__dict__.items():
            same_value(new.__dict__[name], value)
        return
    assert type(new) is type(old)
    if isinstance(old, dict):
        assert list(new) == list(old)
        for key, value in old.items():
            same_value(new[key], value)
    elif isinstance(old, list):
        assert len(new) == len(old)
        for item, other in zip(new, old, strict=True):
            same_value(item, other)
    elif isinstance(old, float) and math.isnan(old):
        assert math.isnan(new)
    else:
        assert new == old
        if hasattr(old, "tzinfo"):
            assert new.tzinfo == old.tzinfo


def outcome(validate: Any, document: Any) -> tuple[str, Any]:
    try:
        return "valid", validate(document)
    except ValidationError as error:
        # repr: an input may hold NaN, which equals nothing, not even itself.
        return "invalid", repr(error.errors(include_url=False))


def dumped(dump: Any) -> Any:
    try:
        return repr(dump())  # repr: a value may hold NaN
    except ValueError as error:  # nested deeper than the serializer goes
        return repr(error)


def assert_validates_as_before(document: Any) -> None:
    old = outcome(old_model.JobSpec.model_validate, document)
    validators = (JobSpec.model_validate, loader._validate_job)
    for new in (outcome(validate, document) for validate in validators):
        assert new[0] == old[0], (new, old)
        if old[0] == "valid":
            same_value(new[1], old[1])
            assert dumped(new[1].model_dump) == dumped(old[1].model_dump)
            assert dumped(new[1].model_dump_json) == dumped(old[1].model_dump_json)
            assert repr(new[1]) == repr(old[1])
        else:
            assert new[1] == old[1]
    lax_old = outcome(lambda d: old_model.JobSpec.model_validate(d, strict=False), document)
    lax_new = outcome(lambda d: JobSpec.model_validate(d, strict=False), document)
    assert lax_new[0] == lax_old[0]
    if lax_old[0] == "valid":
        same_value(lax_new[1], lax_old[1])
    else:
        assert lax_new[1] == lax_old[1]


# Values for every field, valid or not: what YAML gives (datetimes, NaN, keys that are
# not text), subclasses, nesting around both depth limits.
class Text(str):
    pass


class Number(int):
    pass


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.datetimes()
    | st.dates()
    | st.builds(Text, st.text(max_size=3))
    | st.builds(Number, st.integers(0, 9))
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=2).map(tuple)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3) | st.none(), children, max_size=3)
    ),
    max_leaves=10,
)
crons = st.sampled_from(
    ["*/5 * * * *", "0 3 * * *", "5 4 * * 7", "* * * * * *", "61 * * * *", "@daily", "nope"]
) | st.text(alphabet="0123456789*/,-LW#? ", max_size=14)
cron_maps = st.dictionaries(
    st.sampled_from(["year", "month", "day", "week", "day_of_week", "hour", "minute", "x"]),
    st.sampled_from(["*", "*/5", "1-3", "mon", "last", "zz"]) | st.integers(-1, 70) | st.none(),
    max_size=3,
)
schedules = st.one_of(
    st.fixed_dictionaries({"cron": crons | cron_maps | scalars}),
    st.fixed_dictionaries(
        {
            "interval": st.dictionaries(
                st.sampled_from(["days", "minutes", "x"]), st.integers(-1, 5) | scalars, max_size=2
            )
        }
    ),
    st.fixed_dictionaries({"at": scalars | st.sampled_from(["2031-01-01T09:00:00", "later"])}),
    st.dictionaries(st.sampled_from(["cron", "interval", "at"]), scalars, max_size=3),
    scalars,
)
field_values = {
    "name": st.sampled_from(["job-a", "Bad Name", ""]) | scalars,
    "task": st.sampled_from(["a.b", "nodots"]) | scalars,
    "schedule": schedules,
    "args": st.lists(json_like, max_size=3) | json_like,
    "kwargs": st.dictionaries(st.text(max_size=3) | st.integers(0, 2), json_like, max_size=3)
    | json_like,
    "timezone": st.sampled_from(["UTC", "Europe/Berlin", "localtime", "posix/UTC", "Mars/Base"])
    | scalars,
    "dst": st.none() | st.fixed_dictionaries({}, optional={"gap": st.sampled_from(["next", "x"])}),
    "start": scalars,
    "end": scalars,
    "idempotency_key": st.sampled_from(["{job}", "{nope}-{date}"]) | scalars,
    "labels": st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    "retries": st.integers(-1, 101) | scalars,
    "link": scalars,
}
any_documents = (
    st.fixed_dictionaries({}, optional={key: values for key, values in field_values.items()})
    | json_like
)
REFERENCE = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@REFERENCE
@given(any_documents)
def test_any_document_validates_as_before(document: Any) -> None:
    assert_validates_as_before(document)


@REFERENCE
@given(valid_documents, st.sampled_from(["args", "kwargs"]), json_like)
def test_valid_documents_and_their_arguments_validate_as_before(
    document: dict[str, Any], key: str, value: Any
) -> None:
    assert_validates_as_before(document)
    document[key] = [value] if key == "args" else {"v": value}
    assert_validates_as_before(document)


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 254, 255, 256])
@pytest.mark.parametrize("container", ["list", "dict"])
def test_deep_and_cyclic_arguments_validate_as_before(depth: int, container: str) -> None:
    """Not the same object in args and kwargs: past pydantic's depth limit in args, the
    old validation reported that object in kwargs as recursion_loop (its recursion guard
    kept it), the new one, through the args/kwargs wrap validator, as
    recursion_depth_exceeded. A document shares an object only through a YAML alias, which
    the loader refuses before validation."""

    def nested() -> Any:
        value: Any = []
        for _ in range(depth):
            value = [value] if container == "list" else {"k": value}
        return value

    base = {"name": "a", "task": "a.b", "schedule": {"cron": "* * * * *"}}
    assert_validates_as_before({**base, "args": [nested()], "kwargs": {"v": nested()}})
    cycle: list[Any] = []
    cycle.append(cycle)
    assert not is_plain_json(cycle)
    assert_validates_as_before({**base, "args": cycle})


def test_the_corpus_and_the_examples_validate_as_before() -> None:
    texts = [file_text(number, 10).encode() for number in range(100)]
    texts += [path.read_bytes() for path in sorted((ROOT / "jobs.d").rglob("*.yaml"))]
    texts += [path.read_bytes() for path in sorted((ROOT / "tests").rglob("*.yaml"))]
    count = 0
    for text in texts:
        for document in parse_yaml(text, path="f.yaml", max_depth=32).documents:
            if document.data is not None:
                assert_validates_as_before(document.data)
                count += 1
    assert count > 1000


def plain(value: Any) -> Any:
    """A pattern's or day rule's fields as a dict (the two modules' classes differ)."""
    if dataclasses.is_dataclass(value):
        fields = dataclasses.fields(value)
        return {f.name: plain(getattr(value, f.name)) for f in fields if f.compare}
    return value


def compiled(compile_cron: Any, expression: Any) -> Any:
    try:
        return plain(compile_cron(expression))
    except old_cron.CronSyntaxError as error:
        return ("refused", str(error))
    except cron.CronSyntaxError as error:
        return ("refused", str(error))


field_texts = st.one_of(
    st.sampled_from(["*", "?", "0", "7", "07", "59", "60", "L", "LW", "15W", "5L", "FRI#3"]),
    st.sampled_from(["MON-FRI", "SUN", "JAN", "*/15", "5/15", "1-30/5", "FRI-SUN", "5-0"]),
    st.text(alphabet="0123456789*/,-LW#?A", max_size=6),
    st.text(max_size=3),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(field_texts, min_size=4, max_size=7), st.sampled_from([" ", "  ", "\t"]))
def test_cron_texts_compile_as_before(fields: list[str], space: str) -> None:
    text = space.join(fields)
    for expression in (text, text.lower(), f" {text} "):
        new = compiled(cron._compile_text.__wrapped__, expression)
        old = compiled(old_cron._compile_text.__wrapped__, expression)
        assert new == old, expression


def test_the_shared_day_and_month_sets_are_what_parsing_gives() -> None:
    assert cron._day_rule("*", "*") == cron._EVERY_DAY
    assert frozenset(cron._numbers("*", 1, 12, "month")) == cron._EVERY_MONTH
    for low, high in ((0, 59), (0, 23)):
        assert cron._ordered("*", low, high, "x") == tuple(
            sorted(cron._numbers("*", low, high, "x"))
        )
