"""The `job_files` table: the file records of reconciler.spec.records, read and written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.spec.records import FileRecord
from reconciler.store.db import upsert
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
    values = [
        {
            "path": record.path,
            "digest": record.digest,
            "context": record.context,
            "outcome": record.outcome_json(),
            "recorded_at": now,
        }
        for path, record in wanted.items()
        # Identity first: a daemon's pass hands back the very records of unchanged files.
        if (have := known.get(path)) is not record and have != record
    ]
    upsert(connection, job_files, values, key="path", expect_new=not known)
