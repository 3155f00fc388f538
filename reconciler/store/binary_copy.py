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


def encode_rows(rows: Iterable[Sequence[Any]]) -> bytes:
    """Binary COPY data of `rows` (tuples of str, float, bytes or None), header and
    trailer included. Raises ValueError for a string PostgreSQL cannot hold (a NUL) or
    another type."""
    parts = [SIGNATURE]
    append = parts.append
    for row in rows:
        append(_FIELDS(len(row)))
        for value in row:
            kind = type(value)
            if kind is str:
                data = value.encode()
                if b"\x00" in data:
                    raise ValueError("PostgreSQL text cannot contain NUL characters")
                append(_LENGTH(len(data)))
                append(data)
            elif kind is bytes:
                append(_LENGTH(len(value)))
                append(value)
            elif kind is float:
                append(_FLOAT.pack(8, value))
            elif value is None:
                append(_NULL)
            else:
                raise ValueError(f"no binary COPY form here for {kind.__name__}")
    append(TRAILER)
    return b"".join(parts)


def copy_data(connection: Connection, table: str, columns: Sequence[str], data: bytes) -> None:
    """COPY binary data made by `encode_rows` into the columns of the named table."""
    quoted = ", ".join(f'"{column}"' for column in columns)
    cursor: Any = connection.connection.cursor()  # psycopg's, for COPY
    try:
        with cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy:
            copy.write(data)
    finally:
        cursor.close()
