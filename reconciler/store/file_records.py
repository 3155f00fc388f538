"""The `job_files` table: the file records of reconciler.spec.records, read and written."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.spec.records import FileRecord
from reconciler.store.binary_copy import (
    SIGNATURE,
    TRAILER,
    copied_as_new,
    copy_data,
    jsonb_field,
    text_field,
    timestamptz_field,
)
from reconciler.store.db import BULK_ROWS, json_bytes, upsert
from reconciler.store.tables import job_files


def read_file_records(connection: Connection) -> dict[str, FileRecord]:
    """Every record by path, whatever its context (the caller matches contexts); none
    when the table does not exist yet (a database a read-only plan cannot migrate)."""
    if not sa.inspect(connection).has_table(job_files.name):
        return {}
    t = job_files
    query = sa.select(t.c.path, t.c.digest, t.c.context, t.c.outcome)
    return {
        path: FileRecord.from_json(
            path, digest, context, outcome if isinstance(outcome, dict) else json.loads(outcome)
        )
        for path, digest, context, outcome in connection.execute(query)
    }


def write_file_records(
    connection: Connection,
    wanted: Mapping[str, FileRecord],
    *,
    known: Mapping[str, FileRecord],
    now: datetime,
) -> None:
    """Make the table hold exactly `wanted`, given that it holds `known`: only rows that
    differ are written, rows of paths no longer wanted are deleted."""
    gone = sorted(path for path in known if path not in wanted)
    for start in range(0, len(gone), 5000):
        chunk = gone[start : start + 5000]
        connection.execute(sa.delete(job_files).where(job_files.c.path.in_(chunk)))
    changed = [
        record
        for path, record in wanted.items()
        # Identity first: a daemon's pass hands back the very records of unchanged files.
        if (have := known.get(path)) is not record and have != record
    ]
    expect_new = not known
    if expect_new and len(changed) >= BULK_ROWS and connection.dialect.name == "postgresql":
        # Many new rows (a cold apply): binary COPY data made here, as the inventory's.
        data = encode_new_records(changed, now=now)
        if data is not None:
            if copy_new_records(connection, data):
                return
            expect_new = False  # a path has a row after all: upsert them
    values = [
        {
            "path": record.path,
            "digest": record.digest,
            "context": record.context,
            "outcome": record.outcome_json(),
            "recorded_at": now,
        }
        for record in changed
    ]
    upsert(connection, job_files, values, key="path", expect_new=expect_new)


# The columns of a record's row, in the order of `encode_new_records`'s fields.
RECORD_COLUMNS = ("path", "digest", "context", "outcome", "recorded_at")


def encode_new_records(records: Iterable[FileRecord], *, now: datetime) -> bytes | None:
    """The rows `write_file_records` writes of `records` at `now` (in the order of
    RECORD_COLUMNS), as binary COPY data (store.binary_copy): the very bytes psycopg's
    COPY sends for them. None when one of them has no binary form here (then the
    driver writes them, and reports what is wrong). Each row is one join of its fields;
    the context's field and the time's are made once."""
    try:
        return _encode_records(records, now)
    except (ValueError, TypeError):
        return None


def _encode_records(records: Iterable[FileRecord], now: datetime) -> bytes:
    out = io.BytesIO()
    write = out.write
    write(SIGNATURE)
    count = len(RECORD_COLUMNS).to_bytes(2, "big")
    stamp = timestamptz_field(now)
    contexts: dict[str, bytes] = {}
    for record in records:
        context = contexts.get(record.context)
        if context is None:
            context = contexts[record.context] = text_field(record.context)
        write(
            b"".join(
                (
                    count,
                    text_field(record.path),
                    text_field(record.digest),
                    context,
                    jsonb_field(json_bytes(record.outcome_json())),
                    stamp,
                )
            )
        )
    write(TRAILER)
    return out.getvalue()


def copy_new_records(connection: Connection, data: bytes) -> bool:
    """Write rows made by `encode_new_records` (PostgreSQL), in a savepoint; False, and
    nothing written, when one of their paths has a row already (then upsert them)."""
    return copied_as_new(
        connection, lambda: copy_data(connection, job_files.name, RECORD_COLUMNS, [data])
    )
