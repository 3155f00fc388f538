"""Interning the strings of kept data (a daemon's essences and decoded row arguments)
changes no value: equal, the same types, the same order; only the strings are shared."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.memo import intern_values, interned
from reconciler.core.state import PackedKwargs, pack_kwargs, same_kwargs, scheduler_job
from reconciler.store.job_state import pickle_job
from reconciler.store.scheduler_rows import RowDecoder, WrittenRow
from tests.unit.core.planning import spec

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def shape(value: Any) -> Any:
    """The value with the type of every part spelled out (1 == 1.0 == True otherwise)."""
    if isinstance(value, dict):
        return ("dict", [(shape(k), shape(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [shape(item) for item in value])
    return (type(value).__name__, repr(value))


@settings(max_examples=200, deadline=None)
@given(value=values)
def test_interned_values_are_equal_of_the_same_types_in_the_same_order(value: Any) -> None:
    assert shape(interned(value)) == shape(value)
    data = {"root": value, "other": [value]}
    before = shape(data)
    intern_values(data)
    assert shape(data) == before


def test_strings_are_shared() -> None:
    one = interned({"task": "".join(["reconciler.", "tasks"]), "labels": {"te" + "am": "t3"}})
    two = interned({"task": "reconciler." + "tasks", "labels": {"tea" + "m": "t" + "3"}})
    assert one["task"] is two["task"]
    assert next(iter(one["labels"])) is next(iter(two["labels"]))
    assert one["labels"]["team"] is two["labels"]["team"]


def test_a_compact_decoder_decodes_the_same_rows() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    job = scheduler_job(spec("a", kwargs={"data": {"key": "value"}}), spec_hash="h", revision="r")
    state = pickle_job(job, now)
    plain = RowDecoder().decode("a", now.timestamp(), state)
    compact = RowDecoder(compact=True).decode("a", now.timestamp(), state)
    assert isinstance(compact.kwargs, PackedKwargs)  # held as JSON text
    assert compact == plain and shape(compact.kwargs.unpacked()) == shape(plain.kwargs)
    assert job.matches(compact) is None
    written = RowDecoder(compact=True).remember([WrittenRow(job, now.timestamp(), state)])
    assert isinstance(written["a"].kwargs, PackedKwargs) and written["a"] == plain


# Arguments a row may hold (a hand-made pickle may hold anything): tuples, NaN, huge
# integers, numbers equal across types (1 == 1.0 == True) and keys that are not text.
odd = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from([0, 1, 1.0, True, -0.0, 0.0, "1"])
    | st.text(max_size=4)
)
arguments = st.recursive(
    odd,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=12,
)
kwargs = st.dictionaries(st.sampled_from(["job", "payload", "x"]), arguments, max_size=3)


@settings(max_examples=400, deadline=None)
@given(value=kwargs, other=kwargs)
def test_packed_arguments_compare_as_the_dict_they_were_packed_from(
    value: dict[str, Any], other: dict[str, Any]
) -> None:
    """Whatever a row's arguments hold, the packed form (or the dict kept when JSON would
    not give it back) compares with any other arguments exactly as the dict does."""
    packed = pack_kwargs(value)
    for wanted in (other, value, dict(value), pack_kwargs(other)):
        plain = wanted.unpacked() if isinstance(wanted, PackedKwargs) else wanted
        assert same_kwargs(packed, plain) == (value == plain)
        assert (packed == wanted) == (value == plain)
    if isinstance(packed, PackedKwargs):
        assert shape(packed.unpacked()) == shape(value)  # the same types, too


def test_packed_arguments_take_the_size_of_their_text() -> None:
    """What a packed row holds is its text's size (orjson's bytes keep a 4 KB buffer)."""
    value = {"job": "a", "payload": {"task": "t", "kwargs": {"n": 1, "url": "https://x"}}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        packed = [pack_kwargs(dict(value)) for _ in range(100)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(packed)
    finally:
        tracemalloc.stop()
    assert isinstance(packed[0], PackedKwargs)
    assert held < 4 * len(packed[0].text) + 200
