"""core/frozen.py quick_init: the same constructor as the one `dataclass` writes, quicker.

A class given quick_init builds, from any arguments, the instance its twin without it
builds (or refuses them as its twin does), and stays as frozen, comparable, hashable,
picklable and replaceable; the plan's classes keep the constructor signature of theirs."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.frozen import quick_init, quick_new
from reconciler.core.plan import Change, Target
from reconciler.core.state import DesiredJob, JobContent, SchedulerJob


def _twin() -> type:
    """A frozen slotted dataclass with every kind of field: two of them are two twins."""

    @dataclass(frozen=True, slots=True)
    class Twin:
        a: Any
        b: Any
        c: Any = None
        d: tuple[Any, ...] = ()
        e: list[Any] = field(default_factory=list)
        f: Any = field(default="f", compare=False)

    return Twin


Plain, Quick = _twin(), quick_init(_twin())


NAMES = ("a", "b", "c", "d", "e", "f", "g")
values = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.tuples(st.integers()))


def _outcome(make: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    try:
        made = make(*args, **kwargs)
    except TypeError:
        return ("TypeError",)
    return (type(made).__name__, *(getattr(made, name) for name in NAMES[:6]))


@settings(max_examples=300, deadline=None)
@given(
    args=st.lists(values, max_size=7).map(tuple),
    kwargs=st.dictionaries(st.sampled_from(NAMES), values, max_size=4),
)
def test_quick_builds_what_the_generated_init_builds(args, kwargs) -> None:
    assert _outcome(Quick, args, kwargs) == _outcome(Plain, args, kwargs)
    assert _outcome(quick_new(Quick), args, kwargs) == _outcome(Plain, args, kwargs)


def test_quick_new_makes_the_same_kind_of_value() -> None:
    made, called = quick_new(Quick)(1, 2, e=[3]), Quick(1, 2, e=[3])
    assert type(made) is Quick and made == called
    assert hash(quick_new(Quick)(1, 2, e=(3,))) == hash(Quick(1, 2, e=(3,)))
    assert repr(made) == repr(called) and not hasattr(made, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.a = 3
    content = quick_new(JobContent)({"a": 1}, "hash", "active", "jobs.yaml")
    assert pickle.loads(pickle.dumps(content)) == content
    assert content == JobContent({"a": 1}, "hash", "active", "jobs.yaml")
    assert dataclasses.replace(made, c=5) == Quick(1, 2, 5, e=[3])
    assert quick_new(Quick)(1, 2).e == [] and quick_new(Quick)(1, 2).e is not made.e
    for cls in (Change, Target, DesiredJob, JobContent, SchedulerJob):
        assert inspect.signature(quick_new(cls)) == inspect.signature(cls)
    with pytest.raises(TypeError):
        quick_new(Plain)  # not given quick_init


def test_a_quick_instance_is_the_same_kind_of_value() -> None:
    one, other = Quick(1, 2), Quick(1, 2, f="other")
    assert one == other  # `f` is not compared
    hashable = Quick(1, 2, e=(3,)), Quick(1, 2, e=(3,), f="other")
    assert hash(hashable[0]) == hash(hashable[1]) == hash(Plain(1, 2, e=(3,)))
    assert repr(one) == repr(Plain(1, 2))
    assert one.e == [] and one.e is not Quick(1, 2).e  # a fresh default each time
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.a = 3
    assert dataclasses.replace(one, c=5) == Quick(1, 2, 5)
    content = JobContent({"a": 1}, "hash", "active", "jobs.yaml")  # a class of the module
    assert pickle.loads(pickle.dumps(content)) == content
    assert not hasattr(one, "__dict__")


def test_only_frozen_slotted_dataclasses_without_post_init() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Sub(Plain):  # type: ignore[valid-type,misc]
        g: int = 0

    for cls in (NoSlots, NotFrozen, PostInit, Sub, int):
        with pytest.raises(TypeError):
            quick_init(cls)


@pytest.mark.parametrize("cls", [Change, Target, DesiredJob, JobContent, SchedulerJob])
def test_the_plan_classes_keep_their_constructor(cls: type) -> None:
    """The parameters of the quick `__init__` are the dataclass fields, in order, with
    their defaults (a factory's sentinel where `dataclass` puts its own)."""
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, spec in zip(params, fields, strict=True):
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        if spec.default is not dataclasses.MISSING:
            assert param.default is spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            assert param.default is dataclasses.MISSING
        else:
            assert param.default is inspect.Parameter.empty
