"""holds_float: the answer of a plain walk over every value, whatever the nesting."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler.spec.floats import holds_float

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


def every_float(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [number for item in value for number in every_float(item)]
    return []


@given(values)
def test_holds_float_as_a_walk_finds(value: Any) -> None:
    found = every_float(value)
    assert holds_float(value) == bool(found)
    assert holds_float(value, nonfinite_only=True) == any(not math.isfinite(x) for x in found)


def test_subclasses_are_walked_too() -> None:
    class Ratio(float):
        pass

    class Labels(dict[str, Any]):
        pass

    assert holds_float(Labels(a=[1, (2, Ratio(0.5))]))
    assert not holds_float(Labels(a=[1, (2, "0.5")]))
    assert holds_float([{"x": float("nan")}], nonfinite_only=True)
    assert not holds_float([{"x": 1.5}], nonfinite_only=True)
