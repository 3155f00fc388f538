"""PostgreSQL's binary COPY data, made without a connection.

A cold apply makes the 10,000 new scheduler rows and their records in a forked child
(engine.apply) while it writes the inventory; the child has no connection, so it
encodes the rows itself, and the parent sends the bytes as they are (`copy_data`).
Only the values those rows hold: str (a text or varchar column), float (a double
precision column), bytes (a bytea column) and None; their binary forms are the very
bytes psycopg's binary dumpers send for them (tests/store/test_binary_copy.py
compares the rows each COPY leaves).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

# The header (signature, flags, no extension) and the trailer of binary COPY data.
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">i").pack
_FIELDS = struct.Struct(">h").pack
_FLOAT = struct.Struct(">id")
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

    def finish(self) -> bytes:
        """The data, trailer included. Called once: no row is added after it."""
        self._out.write(TRAILER)
        return self._out.getvalue()


def copy_data(connection: Connection, table: str, columns: Sequence[str], data: bytes) -> None:
    """COPY binary data made by `encode_rows` into the columns of the named table."""
    quoted = ", ".join(f'"{column}"' for column in columns)
    cursor: Any = connection.connection.cursor()  # psycopg's, for COPY
    try:
        with cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.write(data)
    finally:
        cursor.close()
