"""A minimal libpq client over ctypes, for the no-op check of a fresh `reconcile plan`
(store/noop_check.py): a few read-only queries with text results.

Importing psycopg costs ~0.2 s (its adapters, typing, asyncio); ctypes and the libpq
psycopg's binary wheel ships (or the system's) cost a few milliseconds. Anything
unexpected raises LibpqUnavailable, and the caller takes its full path.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Sequence

from reconciler.errors import TransientError

_CONNECTION_OK = 0
_TUPLES_OK = 2


class LibpqUnavailable(TransientError):
    """No usable libpq, no connection, or a query that did not return rows (never
    reaches the user: the no-op check declines and the full path runs)."""


def _load() -> ctypes.CDLL:
    """psycopg's own libpq first (what the full path runs), else the system's."""
    import importlib.util

    candidates: list[str] = []
    found = importlib.util.find_spec("psycopg_binary")
    if found is not None and found.submodule_search_locations:
        folder = next(iter(found.submodule_search_locations))
        candidates += sorted(glob.glob(os.path.join(folder + ".libs", "libpq*.so*")))
    candidates.append("libpq.so.5")
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        lib.PQfinish.argtypes = [ctypes.c_void_p]
        lib.PQexec.restype = ctypes.c_void_p
        lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.PQresultStatus.argtypes = [ctypes.c_void_p]
        lib.PQntuples.argtypes = [ctypes.c_void_p]
        lib.PQnfields.argtypes = [ctypes.c_void_p]
        lib.PQgetvalue.restype = ctypes.c_void_p
        lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQgetlength.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQclear.argtypes = [ctypes.c_void_p]
        lib.PQsetClientEncoding.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        return lib
    raise LibpqUnavailable("no libpq")


class Connection:
    """One connection, text results decoded as UTF-8, NULL as None."""

    def __init__(self, conninfo: str) -> None:
        self._lib = _load()
        self._conn = self._lib.PQconnectdb(conninfo.encode())
        if not self._conn or self._lib.PQstatus(self._conn) != _CONNECTION_OK:
            self.close()
            raise LibpqUnavailable("cannot connect")
        if self._lib.PQsetClientEncoding(self._conn, b"UTF8") != 0:
            self.close()
            raise LibpqUnavailable("cannot set the client encoding")

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        result = self._lib.PQexec(self._conn, sql.encode())
        if not result:
            raise LibpqUnavailable("no result")
        try:
            if self._lib.PQresultStatus(result) != _TUPLES_OK:
                raise LibpqUnavailable("the query failed")
            return _rows(self._lib, result)
        finally:
            self._lib.PQclear(result)

    def execute(self, sql: str) -> None:
        """A statement whose result is not read (BEGIN, COMMIT); failures raise."""
        result = self._lib.PQexec(self._conn, sql.encode())
        if not result:
            raise LibpqUnavailable("no result")
        status = self._lib.PQresultStatus(result)
        self._lib.PQclear(result)
        if status != 1:  # PGRES_COMMAND_OK
            raise LibpqUnavailable("the statement failed")

    def close(self) -> None:
        if self._conn:
            self._lib.PQfinish(self._conn)
            self._conn = None


def _rows(lib: ctypes.CDLL, result: int) -> list[tuple[str | None, ...]]:
    count, width = lib.PQntuples(result), lib.PQnfields(result)
    value, length, isnull = lib.PQgetvalue, lib.PQgetlength, lib.PQgetisnull
    string_at = ctypes.string_at
    rows: list[tuple[str | None, ...]] = []
    columns: Sequence[int] = range(width)
    for row in range(count):
        rows.append(
            tuple(
                None
                if isnull(result, row, column)
                else string_at(value(result, row, column), length(result, row, column)).decode()
                for column in columns
            )
        )
    return rows
