"""canonical_json is json.dumps's exact spelling, however it is computed: every stored
spec hash was made with it, and one changed byte would make every job an update."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.spec.essence import canonical_json, hash_essence, hashes_to

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


# 500 examples: each of these faults fails a test within them, with every seed tried (4),
# hypothesis's example database cleared: orjson's spelling for every value (no float
# check), ensure_ascii=True, unsorted keys, an integer beyond 64 bits raising, hashes_to
# without the canonical fallback. 2000 took 18 s here (28 s in CI) and found no more.
EXAMPLES = 500


def reference(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=EXAMPLES, deadline=None)
@given(documents)
def test_canonical_json_is_json_dumps_spelling(data: Any) -> None:
    assert canonical_json(data) == reference(data)


def test_the_known_differences_of_orjson_are_spelled_as_json_does() -> None:
    for data in ({"ratio": 1e16}, {"small": 1e-7}, {"big": 2**64}, {"text": "\ud800"}, [0.5]):
        assert canonical_json(data) == reference(data)


def as_jsonb_gives(data: Any) -> Any:
    """`data` as PostgreSQL's JSONB gives it back: integral floats of 1e16 and beyond as
    integers, -0.0 as 0.0."""
    if isinstance(data, float):
        if data.is_integer() and abs(data) >= 1e16:
            return int(data)
        return 0.0 if data == 0 else data
    if isinstance(data, dict):
        return {key: as_jsonb_gives(value) for key, value in data.items()}
    if isinstance(data, list):
        return [as_jsonb_gives(item) for item in data]
    return data


def hash_or_none(data: Any) -> str | None:
    try:
        return hash_essence(data)
    except UnicodeEncodeError:  # a lone surrogate: no essence holds one (not UTF-8)
        return None


@settings(max_examples=EXAMPLES, deadline=None)
@given(documents, documents)
def test_hashes_to_answers_as_the_canonical_hash_does(data: Any, other: Any) -> None:
    """`hashes_to` is the canonical hash compared, for the data itself, for what JSONB
    makes of it and for anything else."""
    spec_hash = hash_or_none(data)
    assume(spec_hash is not None)
    assert spec_hash is not None
    for candidate in (data, as_jsonb_gives(data), other):
        expected = hash_or_none(candidate) == spec_hash
        assert hashes_to(candidate, spec_hash) is expected


def test_hashes_to_refuses_what_jsonb_rewrote() -> None:
    cases = [
        ({"ratio": 1e16}, False),
        ({"zero": -0.0}, False),
        ({"big": 2**64, "ratio": 1e300}, False),
        ({"small": [0.5, 1e-7, 3.0]}, True),  # JSONB keeps these as they are
    ]
    for data, kept in cases:
        assert hashes_to(data, hash_essence(data))
        assert hashes_to(as_jsonb_gives(data), hash_essence(data)) is kept
