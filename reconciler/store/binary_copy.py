"""PostgreSQL's binary COPY data, made without a connection.

A cold apply makes the 10,000 new scheduler rows and their records in a forked child
(engine.apply) while it writes the inventory; the child has no connection, so it
encodes the rows itself, and the parent sends the bytes as they are (`copy_data`).
Only the values those rows hold: str (a text or varchar column), float (a double
precision column), bytes (a bytea column) and None; their binary forms are the very
bytes psycopg's binary dumpers send for them (tests/integration/test_new_rows.py
compares the rows each COPY leaves).

The inventory's new rows are made here too (store.inventory), by the parent, from the
whole fields below (`text_field` ...): psycopg's generic row writer, given them as
dicts, costs a third more (tests/integration/test_new_inventory.py compares the bytes
with psycopg's).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

# The header (signature, flags, no extension) and the trailer of binary COPY data.
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">i").pack
_FIELDS = struct.Struct(">h").pack
_FLOAT = struct.Struct(">id")
_INT4 = struct.Struct(">ii")
_INT8 = struct.Struct(">iq")
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"
# timestamptz: microseconds since this moment.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# The length words of the common sizes, made once (a scheduler row's state is ~1 KB).
_COMMON = 4096
_LENGTHS = tuple(_LENGTH(size) for size in range(_COMMON))
_COUNTS = tuple(_FIELDS(count) for count in range(16))


def encode_rows(rows: Iterable[Sequence[Any]]) -> bytes:
    """Binary COPY data of `rows` (tuples of str, float, bytes or None), header and
    trailer included. Raises ValueError for a string PostgreSQL cannot hold (a NUL) or
    another type."""
    data = CopyData()
    for row in rows:
        data.add(row)
    return data.finish()


class CopyData:
    """Binary COPY data written row by row (`encode_rows` of the rows added), into one
    growing buffer. Each part is written as it is made: no list of parts joined at the
    end (at 100,000 scheduler rows that list and its small pieces took ~70,000 page
    faults and half the encoding time, bench/RESULTS.md), and the caller need not keep
    its rows either."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._out.write(SIGNATURE)

    def add(self, row: Sequence[Any]) -> None:
        """Append one row. Raises ValueError as `encode_rows` does (the row is then
        partly written: discard the data)."""
        write = self._out.write
        count = len(row)
        write(_COUNTS[count] if count < len(_COUNTS) else _FIELDS(count))
        for value in row:
            kind = type(value)
            if kind is str:
                data = value.encode()
                if b"\x00" in data:
                    raise ValueError("PostgreSQL text cannot contain NUL characters")
                size = len(data)
                write(_LENGTHS[size] if size < _COMMON else _LENGTH(size))
                write(data)
            elif kind is bytes:
                size = len(value)
                write(_LENGTHS[size] if size < _COMMON else _LENGTH(size))
                write(value)
            elif kind is float:
                write(_FLOAT.pack(8, value))
            elif value is None:
                write(_NULL)
            else:
                raise ValueError(f"no binary COPY form here for {kind.__name__}")

    def take(self) -> bytes:
        """The data written since the last `take` (from the header on, the first time):
        the data of the rows so far, to be sent before the others are made. The parts
        taken and then `finish`'s, joined, are the whole data."""
        taken = self._out.getvalue()
        self._out = io.BytesIO()
        return taken

    def finish(self) -> bytes:
        """The data (since the last `take`), trailer included. Called once: no row is
        added after it."""
        self._out.write(TRAILER)
        return self._out.getvalue()


def timestamptz_micros(moment: datetime) -> int:
    """A timestamptz's binary value: microseconds since 2000-01-01 UTC (psycopg's
    DatetimeBinaryDumper). Raises ValueError for a naive datetime (a timestamp's)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime is no timestamptz")
    delta = moment - _EPOCH
    return delta.microseconds + 1_000_000 * (86_400 * delta.days + delta.seconds)


# Whole fields (length word and value), for writers that join a row's fields
# themselves (store.inventory): a row is one `b"".join` of them, not a call per value.


def text_field(text: str) -> bytes:
    """A text (or varchar) field. Raises ValueError for a NUL."""
    data = text.encode()
    if b"\x00" in data:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    return length_word(len(data)) + data


def length_word(size: int) -> bytes:
    """The length word of a field of `size` bytes."""
    return _LENGTHS[size] if size < _COMMON else _LENGTH(size)


def jsonb_field(json: bytes) -> bytes:
    """A jsonb field of the JSON text `json` (UTF-8): its format version, then the text,
    as psycopg's JsonbBinaryDumper sends it (the server parses it)."""
    return length_word(len(json) + 1) + b"\x01" + json


def int4_field(value: int) -> bytes:
    """An integer field. Raises ValueError beyond int4."""
    try:
        return _INT4.pack(4, value)
    except struct.error:
        raise ValueError(f"{value} is beyond an integer column") from None


def bool_field(value: bool) -> bytes:
    return _TRUE if value else _FALSE


def timestamptz_field(moment: datetime) -> bytes:
    """A timestamptz field. Raises ValueError for a naive datetime."""
    return _INT8.pack(8, timestamptz_micros(moment))


NULL_FIELD = _NULL


def copy_data(
    connection: Connection, table: str, columns: Sequence[str], data: Iterable[bytes]
) -> None:
    """COPY binary data made by `encode_rows` (or CopyData, in parts) into the columns
    of the named table: the parts of `data`, each sent as it comes (an iterator may
    still be making the next). An error of `data` aborts the COPY (nothing of it is
    written) and is raised; so is the server's (psycopg's own errors, such as
    UniqueViolation, not wrapped by SQLAlchemy), as soon as psycopg sees it: the rest
    of `data` is not taken."""
    quoted = ", ".join(f'"{column}"' for column in columns)
    cursor: Any = connection.connection.cursor()  # psycopg's, for COPY
    try:
        with cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy:
            for part in data:
                copy.write(part)
    finally:
        cursor.close()


def copied_as_new(connection: Connection, copy: Callable[[], None]) -> bool:
    """`copy()` (COPYs of rows expected new, PostgreSQL) in a savepoint; False, and
    nothing of it written, when one of them has a row already (psycopg's own
    UniqueViolation, raised by its COPY, not wrapped by SQLAlchemy): the caller then
    upserts them. Any other error rolls the savepoint back and is raised."""
    from psycopg.errors import UniqueViolation

    try:
        with connection.begin_nested():
            copy()
    except UniqueViolation:
        return False
    return True
