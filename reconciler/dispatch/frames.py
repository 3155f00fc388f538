"""The AMQP 0-9-1 frames of one `basic.publish`, encoded in one pass.

py-amqp encodes every message through generic serialisers: a chain of type tests per
header value and a BytesIO per table, for some 25 header items a Celery message carries.
On the firing path that was the largest share of a fire's CPU. The fire messages use a
few value types, and most header items are the same in every fire (Celery's protocol
fields: lang, eta, group, retries, origin, ...), so each scalar item is encoded once and
the bytes are reused (a bounded memo owned by the encoder).

The output is byte for byte what py-amqp's frame writer sends for the same message
(tests/dispatch/test_frames.py compares them), so the broker and the worker see no
difference. Only what fires need is supported: basic properties of kinds shortstr,
octet and table; table values str, bytes, bool, int, float, None, list, tuple, dict.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

FRAME_END = b"\xce"
METHOD_FRAME, HEADER_FRAME, BODY_FRAME = 1, 2, 3
BASIC_CLASS, PUBLISH_METHOD = 60, 40
# basic properties in wire order (AMQP 0-9-1 §4.2.6 and py-amqp's Message.PROPERTIES);
# a flag bit per property, highest bit first.
BASIC_PROPERTIES = (
    ("content_type", "s"),
    ("content_encoding", "s"),
    ("application_headers", "F"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "s"),
    ("reply_to", "s"),
    ("expiration", "s"),
    ("message_id", "s"),
    ("timestamp", "L"),
    ("type", "s"),
    ("user_id", "s"),
    ("app_id", "s"),
    ("cluster_id", "s"),
)
_PROPERTY_NAMES = frozenset(name for name, _ in BASIC_PROPERTIES)
# Values whose equality implies equal bytes (not float: 0.0 == -0.0, nan != nan).
_MEMO_TYPES = (str, bytes, bool, int, type(None))
_INT32 = 2147483647
_pack_frame_head = struct.Struct(">BHI").pack
_pack_length = struct.Struct(">I").pack


class PublishEncoder:
    """Encodes `basic.publish` frames. Not thread-safe: one per connection."""

    def __init__(self, *, memo_size: int = 4096) -> None:
        self._memo: dict[tuple[str, type, Any], bytes] = {}  # (key, type, value) -> item
        self._keys: dict[str, bytes] = {}  # key -> its short string
        self._memo_size = memo_size

    def frames(
        self,
        *,
        channel: int,
        frame_max: int,
        routing_key: str,
        properties: Mapping[str, Any],
        body: bytes,
        exchange: str = "",
        mandatory: bool = False,
    ) -> bytes:
        """Method, header and body frames of one message, ready for the socket.

        Bodies longer than `frame_max` - 8 are split into several body frames, as the
        broker negotiated (py-amqp does the same)."""
        arguments = (
            b"\x00\x00"
            + _shortstr(exchange)
            + _shortstr(routing_key)
            + (b"\x01" if mandatory else b"\x00")
        )
        method = struct.pack(">HH", BASIC_CLASS, PUBLISH_METHOD) + arguments
        header = struct.pack(">HHQ", BASIC_CLASS, 0, len(body)) + self._properties(properties)
        parts = [
            _pack_frame_head(METHOD_FRAME, channel, len(method)),
            method,
            FRAME_END,
            _pack_frame_head(HEADER_FRAME, channel, len(header)),
            header,
            FRAME_END,
        ]
        chunk = frame_max - 8
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            parts += [_pack_frame_head(BODY_FRAME, channel, len(piece)), piece, FRAME_END]
        return b"".join(parts)

    def _properties(self, properties: Mapping[str, Any]) -> bytes:
        flags = 0
        values: list[bytes] = []
        unknown = properties.keys() - _PROPERTY_NAMES
        if unknown:
            raise ValueError(f"unknown basic properties: {sorted(unknown)}")
        for bit, (name, kind) in zip(range(15, 1, -1), BASIC_PROPERTIES, strict=True):
            value = properties.get(name)
            if value is None:
                continue
            flags |= 1 << bit
            if kind == "s":
                values.append(_shortstr(value or ""))
            elif kind == "o":
                values.append(struct.pack("B", value))
            elif kind == "F":
                values.append(self.table(value or {}))
            else:
                raise ValueError(f"property {name!r} is not supported by this encoder")
        return struct.pack(">H", flags) + b"".join(values)

    def table(self, items: Mapping[str, Any]) -> bytes:
        """An AMQP field table (length-prefixed), items in the mapping's order."""
        memo = self._memo
        parts = []
        for key, value in items.items():
            kind = type(value)
            if kind in _MEMO_TYPES:
                memo_key = (key, kind, value)
                encoded = memo.get(memo_key)
                if encoded is None:
                    encoded = self._key(key) + self._value(value)
                    if len(memo) >= self._memo_size:
                        memo.clear()  # the constant items come back after one miss each
                    memo[memo_key] = encoded
            else:
                encoded = self._key(key) + self._value(value)
            parts.append(encoded)
        data = b"".join(parts)
        return _pack_length(len(data)) + data

    def _key(self, key: str) -> bytes:
        encoded = self._keys.get(key)
        if encoded is None:
            if len(self._keys) >= self._memo_size:
                self._keys.clear()
            encoded = self._keys[key] = _shortstr(key)
        return encoded

    def _value(self, value: Any) -> bytes:
        # The order of the tests is py-amqp's (_write_item): bool before int.
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        if isinstance(value, bytes):
            return b"S" + _pack_length(len(value)) + value
        if isinstance(value, bool):
            return b"t\x01" if value else b"t\x00"
        if isinstance(value, float):
            return struct.pack(">cd", b"d", value)
        if isinstance(value, int):
            if value > _INT32 or value < -_INT32:
                return struct.pack(">cq", b"L", value)
            return struct.pack(">ci", b"I", value)
        if isinstance(value, dict):
            return b"F" + self.table(value)
        if isinstance(value, list | tuple):
            return b"A" + self._array(value)
        if value is None:
            return b"V"
        raise ValueError(f"cannot encode a {type(value).__name__} in an AMQP table")

    def _array(self, values: Sequence[Any]) -> bytes:
        encoded = b"".join([self._value(value) for value in values])
        return _pack_length(len(encoded)) + encoded


def _shortstr(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > 255:
        raise ValueError(f"a short string is at most 255 bytes: {text[:40]!r}...")
    return struct.pack("B", len(data)) + data
