"""PublishEncoder against py-amqp's own frame writer: the same bytes for every message."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import amqp
import pytest
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.dispatch.frames import PublishEncoder


def amqp_frames(
    *,
    channel: int,
    frame_max: int,
    routing_key: str,
    properties: dict[str, Any],
    body: bytes,
    mandatory: bool,
) -> bytes:
    """What py-amqp's Channel.basic_publish writes to the socket for this message."""
    written: list[bytes] = []
    transport = SimpleNamespace(write=lambda data: written.append(bytes(data)))
    write_frame = frame_writer(SimpleNamespace(frame_max=frame_max, bytes_sent=0), transport)
    arguments = dumps("Bssbb", (0, "", routing_key, mandatory, False))
    write_frame(1, channel, (60, 40), arguments, amqp.Message(body, **properties))
    return b"".join(written)


def celery_like_properties(**headers: Any) -> dict[str, Any]:
    return {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "application_headers": {
            "lang": "py",
            "task": "reconciler.tasks.noop",
            "id": "2ef97c96-3b66-5c19-ad19-7207c2aeaafd",
            "eta": None,
            "retries": 0,
            "timelimit": [30, 29.0],
            "stamps": {},
            "ignore_result": False,
            **headers,
        },
        "delivery_mode": 2,
        "correlation_id": "2ef97c96-3b66-5c19-ad19-7207c2aeaafd",
        "reply_to": "4c9982cf-3de0-3e17-b0bc-0e2ab3afee01",
    }


def encoded(encoder: PublishEncoder, **message: Any) -> bytes:
    return encoder.frames(**message)


@pytest.mark.parametrize(
    "message",
    [
        {"properties": celery_like_properties(), "body": b'[[], {}, {"chain": null}]'},
        {"properties": celery_like_properties(expires="2026-12-01T22:00:00+00:00"), "body": b""},
        {"properties": {**celery_like_properties(), "expiration": "60000"}, "body": b"x"},
        {"properties": celery_like_properties(big=2**40, neg=-5, ok=True, n=1.5), "body": b"y"},
        {"properties": {"application_headers": {}, "priority": 3}, "body": b"z" * 1000},
        {"properties": celery_like_properties(text="é ☃"), "body": "é".encode() * 50_000},
    ],
)
def test_the_frames_are_py_amqps(message: dict[str, Any]) -> None:
    encoder = PublishEncoder()
    wire = {"channel": 1, "frame_max": 4096, "routing_key": "default", "mandatory": True}
    expected = amqp_frames(**wire, **message)
    assert encoded(encoder, **wire, **message) == expected
    assert encoded(encoder, **wire, **message) == expected  # from the memo this time


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


# No deadline: a loaded 2-core machine makes single examples slow, not wrong.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=12),
    routing_key=st.text(max_size=30),
    body=st.binary(max_size=300),
    mandatory=st.booleans(),
)
def test_any_table_of_supported_values_encodes_as_py_amqp_does(
    headers: dict[str, Any], routing_key: str, body: bytes, mandatory: bool
) -> None:
    encoder = PublishEncoder(memo_size=8)  # small: the memo is cleared along the way
    message = {
        "channel": 3,
        "frame_max": 128,
        "routing_key": routing_key,
        "properties": {"content_type": "application/json", "application_headers": headers},
        "body": body,
        "mandatory": mandatory,
    }
    for _ in range(2):
        assert encoder.frames(**message) == amqp_frames(**message)


def test_equal_values_of_different_types_are_not_confused() -> None:
    encoder = PublishEncoder()
    for value in (1, True, 1.0, 0, False, 0.0, -0.0):
        properties = {"application_headers": {"n": value}}
        message = {"channel": 1, "frame_max": 4096, "routing_key": "q", "body": b""}
        assert encoder.frames(properties=properties, **message) == amqp_frames(
            properties=properties, mandatory=False, **message
        )


def test_what_it_cannot_encode_is_refused() -> None:
    encoder = PublishEncoder()
    message = {"channel": 1, "frame_max": 4096, "routing_key": "q", "body": b""}
    with pytest.raises(ValueError, match="cannot encode"):
        encoder.frames(properties={"application_headers": {"x": object()}}, **message)
    with pytest.raises(ValueError, match="unknown basic properties"):
        encoder.frames(properties={"colour": "red"}, **message)
