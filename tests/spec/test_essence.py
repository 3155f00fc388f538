"""canonical_json is json.dumps's exact spelling, however it is computed: every stored
spec hash was made with it, and one changed byte would make every job an update."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.spec.essence import canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # control characters, non-BMP, lone surrogates
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def reference(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=2000, deadline=None)
@given(documents)
def test_canonical_json_is_json_dumps_spelling(data: Any) -> None:
    assert canonical_json(data) == reference(data)


def test_the_known_differences_of_orjson_are_spelled_as_json_does() -> None:
    for data in ({"ratio": 1e16}, {"small": 1e-7}, {"big": 2**64}, {"text": "\ud800"}, [0.5]):
        assert canonical_json(data) == reference(data)
