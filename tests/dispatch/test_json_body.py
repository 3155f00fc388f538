"""The publisher's message body: the text kombu's json serializer writes, for every
body of JSON values (a fire's args and kwargs), and kombu's own for anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.serialization import dumps

from reconciler.dispatch.publisher import _json_body

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # nan and inf too: both encoders write NaN / Infinity
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(args=st.lists(json_values, max_size=3), kwargs=st.dictionaries(st.text(), json_values))
def test_the_body_is_what_kombu_writes(args: list[Any], kwargs: dict[str, Any]) -> None:
    body = (args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    assert _json_body(body) == dumps(body, serializer="json")


def test_a_value_json_cannot_write_goes_through_kombu() -> None:
    body = ((), {"at": datetime(2031, 1, 1, tzinfo=UTC), "raw": b"\xff"}, {})
    assert _json_body(body) == dumps(body, serializer="json")
