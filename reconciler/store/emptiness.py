"""Whether a database holds no file record yet, asked before SQLAlchemy is imported.

A cold `reconcile apply` parses every job file; knowing that early lets it start
parsing on the second core while it imports and migrates (spec.loader.load_ahead).
This is only a hint: the pass reads the records itself, in its own transaction, and
any answer here changes nothing but the time taken. PostgreSQL only (through
store.libpq, a few milliseconds); anything else or anything unexpected is "no".
"""

from __future__ import annotations

from reconciler.store.libpq import Connection, LibpqUnavailable

_SCHEMES = ("postgresql://", "postgres://")


def holds_no_file_records(url: str) -> bool:
    """True when the database at `url` certainly has no `job_files` row (no such table,
    or an empty one); False when it has some, or when that cannot be told cheaply."""
    if not url.startswith(_SCHEMES):
        return False
    try:
        connection = Connection(url)
    except LibpqUnavailable:
        return False
    try:
        if connection.query("SELECT to_regclass('job_files') IS NULL") == [("t",)]:
            return True
        return connection.query("SELECT EXISTS (SELECT 1 FROM job_files)") == [("f",)]
    except LibpqUnavailable:
        return False
    finally:
        connection.close()
