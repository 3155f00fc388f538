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
