"""A cheap test that `scheduled_jobs` and `apscheduler_jobs` have not changed.

PostgreSQL writes a new row version for every insert and update and stamps it with the
id of the writing transaction (`xmin`); a committed version never carries the `xmin` of
an older version of the same row (measured: VACUUM FREEZE keeps `xmin` readable). So the
multiset of (key, xmin) pairs of a table changes with every committed write, deletes
included. Its size and the sum of a 64-bit hash of each pair summarise it in one scan,
an order of magnitude cheaper than reading and decoding the rows.

A daemon pass compares the fingerprint with the one its cached state was taken at and
reads the rows only when they differ. SQLite has no row versions: there, every pass
reads the rows.

The scheduler's rows move with every fire (a daemon at 100,000 jobs: hundreds a second),
so a daemon's pass nearly always finds that fingerprint moved. `read_fingerprint_since`
also returns, from the same scan and snapshot, the scheduler rows whose version may be
newer than a HORIZON: the `xmin` of an earlier snapshot (`pg_current_snapshot()`), below
which every transaction had ended when that snapshot was taken. A row version that an
earlier read did not see was written by a transaction still running at that read or
later, so its `xid` is at or after the horizon of any snapshot taken before that read
(xids compared modulo 2^32, as PostgreSQL does). The reader then patches what it knows
with those rows and checks the result against the fingerprint (store.scheduler_rows):
a row deleted, or anything the horizon missed, makes the sums differ and the rows are
read as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# xmin::text::bigint: xid has no cast to an integer type, its text form does.
_SUMMARY = """
SELECT 'inventory', count(*), coalesce(sum(hashtextextended(name, xmin::text::bigint)), 0)
FROM scheduled_jobs {inventory_filter}
UNION ALL
SELECT 'scheduler', count(*), coalesce(sum(hashtextextended(id, xmin::text::bigint)), 0)
FROM apscheduler_jobs {scheduler_filter}
"""
_WHOLE = sa.text(_SUMMARY.format(inventory_filter="", scheduler_filter=""))
_SOME = sa.text(
    _SUMMARY.format(
        inventory_filter="WHERE name = ANY(:names)", scheduler_filter="WHERE id = ANY(:names)"
    )
)


# The same summaries, the snapshot's horizon, and the keys, versions and hashes of the
# scheduler rows written at or after :horizon (age(): transactions before the current
# one, modulo 2^32, as PostgreSQL compares xids), in one scan of each table and one
# snapshot. NULL :horizon: none.
# Not their states: after a long quiet those can be every row, and one array of 100,000
# states would be converted in one C call holding the GIL (see store.scheduler_rows).
_SCHEDULER_SINCE = """
SELECT 'scheduler', count(*), coalesce(sum(hash), 0),
       pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296,
       array_agg(id) FILTER (WHERE new), array_agg(version) FILTER (WHERE new),
       array_agg(hash) FILTER (WHERE new)
FROM (
    SELECT id, version, hashtextextended(id, version) AS hash,
           coalesce(age(xid) <= age(CAST(CAST(:horizon AS text) AS xid)), false) AS new
    FROM (SELECT id, xmin AS xid, xmin::text::bigint AS version FROM apscheduler_jobs) AS rows
) AS versions
"""
_SINCE = sa.text(
    """
SELECT 'inventory', count(*), coalesce(sum(hashtextextended(name, xmin::text::bigint)), 0),
       NULL::bigint, NULL::varchar[], NULL::bigint[], NULL::bigint[]
FROM scheduled_jobs
UNION ALL
"""
    + _SCHEDULER_SINCE
)
# The same without the inventory's scan, for a caller that knows it has not changed.
_SCHEDULER_ONLY_SINCE = sa.text(_SCHEDULER_SINCE)


@dataclass(frozen=True, slots=True)
class NewVersions:
    """Scheduler rows written at or after a horizon (`read_fingerprint_since`), and the
    horizon of the snapshot they were read in: (id, version, hash of (id, version) as
    the fingerprint sums it)."""

    horizon: int
    rows: list[tuple[str, int, int]]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """(rows, sum of row-version hashes) of our inventory and of the scheduler's rows."""

    inventory: tuple[int, int]
    scheduler: tuple[int, int]

    def moved(self, before: Fingerprint, after: Fingerprint) -> Fingerprint:
        """This fingerprint after a write that turned the rows summarised by `before`
        into those summarised by `after` (both taken over the same keys)."""
        return Fingerprint(
            _shift(self.inventory, before.inventory, after.inventory),
            _shift(self.scheduler, before.scheduler, after.scheduler),
        )


def supported(connection: Connection) -> bool:
    """PostgreSQL 11 or newer (hashtextextended); elsewhere every pass reads the rows."""
    version = connection.dialect.server_version_info or (0,)
    return connection.dialect.name == "postgresql" and version >= (11,)


def read_fingerprint(connection: Connection, names: Sequence[str] | None = None) -> Fingerprint:
    """The fingerprint of both tables, or of the rows keyed by `names` only."""
    if names is None:
        rows = connection.execute(_WHOLE)
    else:
        rows = connection.execute(_SOME, {"names": list(names)})
    summary = {table: (int(count), int(total)) for table, count, total in rows}
    return Fingerprint(summary["inventory"], summary["scheduler"])


def _shift(
    value: tuple[int, int], before: tuple[int, int], after: tuple[int, int]
) -> tuple[int, int]:
    return value[0] - before[0] + after[0], value[1] - before[1] + after[1]


def read_fingerprint_since(
    connection: Connection, horizon: int | None, *, inventory: tuple[int, int] | None = None
) -> tuple[Fingerprint, NewVersions]:
    """`read_fingerprint` of both tables, and the scheduler rows written at or after
    `horizon` (None: none) with this snapshot's own horizon, in one snapshot.
    `inventory`: the inventory's part, known by the caller to be unchanged
    (store.change_counts): that table is not scanned."""
    summary: dict[str, tuple[int, int]] = {}
    if inventory is not None:
        summary["inventory"] = inventory
    new = NewVersions(0, [])
    query = _SINCE if inventory is None else _SCHEDULER_ONLY_SINCE
    for table, count, total, mark, ids, versions, hashes in connection.execute(
        query, {"horizon": horizon}
    ):
        summary[table] = (int(count), int(total))
        if table == "scheduler":
            new = NewVersions(
                int(mark), list(zip(ids or (), versions or (), hashes or (), strict=True))
            )
    return Fingerprint(summary["inventory"], summary["scheduler"]), new
