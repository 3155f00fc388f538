"""How many transactions have written `scheduled_jobs` and `apscheduler_jobs`: counted
by triggers (migration 0007) in `table_changes`, so that a daemon pass can tell that
neither table changed without scanning them (store.fingerprint scans both: at 100,000
jobs, most of a no-op pass).

The count of a table is the sum of its rows in `table_changes`. Every transaction that
writes the table adds to it, whoever runs it (a CLI apply, APScheduler's write-backs, a
hand UPDATE or DELETE, a TRUNCATE), in that transaction: a snapshot that sees the write
sees the count moved, and no snapshot sees one without the other. Nothing makes a count
go back (`compact_change_counts` keeps the sum), so two snapshots with the same count
of a table see the same rows in it.

The counts are trusted only where the triggers are there and enabled: a database
migrated before 0007, a table dropped and created again (by APScheduler's `start()`,
which makes a missing table without our trigger), a trigger disabled or dropped by hand
all make `read_change_counts` answer None, and the pass falls back on the fingerprint
(PostgreSQL) or reads the rows (SQLite). One thing is not seen: a writer that disables
the trigger, writes, and enables it again; the daemon's resync reads every row anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.store.tables import apscheduler_jobs, scheduled_jobs, table_changes

_INVENTORY, _SCHEDULER = scheduled_jobs.name, apscheduler_jobs.name
# Past this many rows, a daemon folds them into one per table (the sum stays).
COMPACT_ABOVE = 200

# PostgreSQL: each table's identity (its oid: a table made again is another), whether
# its trigger is there and fires ALWAYS (also under session_replication_role = replica).
_POSTGRES_TRIGGERS = sa.text(
    """
SELECT t.name, coalesce(to_regclass(t.name)::oid::bigint, 0),
       EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(t.name)
               AND g.tgname = 'count_changes' AND g.tgenabled = 'A')
FROM (VALUES (:inventory), (:scheduler)) AS t(name)
WHERE to_regclass('table_changes') IS NOT NULL
"""
)
# SQLite: the counting table and each table's three row triggers, by name.
_SQLITE_OBJECTS = sa.text(
    "SELECT name FROM sqlite_master WHERE name = 'table_changes' OR name LIKE 'count_changes_%'"
)
_SQLITE_NEEDED = {"table_changes"} | {
    f"count_changes_{table}_{event}"
    for table in (_INVENTORY, _SCHEDULER)
    for event in ("insert", "update", "delete")
}
_SUMS = sa.select(table_changes.c.table_name, sa.func.sum(table_changes.c.changes)).group_by(
    table_changes.c.table_name
)
# The tables this transaction has written (PostgreSQL): its own rows.
_OWN = sa.text("SELECT table_name FROM table_changes WHERE txid = txid_current_if_assigned()")
_COMPACT = sa.text(
    """
WITH gone AS (DELETE FROM table_changes WHERE table_name = :name RETURNING changes)
INSERT INTO table_changes (table_name, txid, changes)
SELECT :name, txid_current(), sum(changes) FROM gone HAVING count(*) > 0
"""
)


@dataclass(frozen=True, slots=True)
class ChangeCounts:
    """(table identity, transactions that wrote it) of our inventory and of the
    scheduler's rows. Equal counts of a table: nobody wrote it in between."""

    inventory: tuple[int, int]
    scheduler: tuple[int, int]

    def plus(self, written: frozenset[str]) -> ChangeCounts:
        """These counts after a transaction that wrote the tables named in `written`
        commits (each writing transaction counts once per table)."""
        inventory, scheduler = _INVENTORY in written, _SCHEDULER in written
        return ChangeCounts(_plus(self.inventory, inventory), _plus(self.scheduler, scheduler))


def _plus(count: tuple[int, int], wrote: bool) -> tuple[int, int]:
    return (count[0], count[1] + 1) if wrote else count


def read_change_counts(connection: Connection) -> ChangeCounts | None:
    """The counts as this statement's snapshot sees them; None when they cannot be
    trusted here (module doc): the caller reads the tables."""
    if connection.dialect.name == "postgresql":
        names = {"inventory": _INVENTORY, "scheduler": _SCHEDULER}
        found = connection.execute(_POSTGRES_TRIGGERS, names)
        identities = {name: int(identity) for name, identity, counted in found if counted}
        if set(identities) != {_INVENTORY, _SCHEDULER}:
            return None
    elif {name for (name,) in connection.execute(_SQLITE_OBJECTS)} >= _SQLITE_NEEDED:
        identities = {_INVENTORY: 0, _SCHEDULER: 0}
    else:
        return None
    sums = {name: int(total) for name, total in connection.execute(_SUMS)}
    return ChangeCounts(
        (identities[_INVENTORY], sums.get(_INVENTORY, 0)),
        (identities[_SCHEDULER], sums.get(_SCHEDULER, 0)),
    )


def written_here(connection: Connection) -> frozenset[str] | None:
    """The counted tables this connection's transaction has written so far; None where
    that cannot be told (SQLite counts rows, not transactions)."""
    if connection.dialect.name != "postgresql":
        return None
    return frozenset(name for (name,) in connection.execute(_OWN))


def compact_change_counts(connection: Connection) -> bool:
    """Fold each table's rows into one when there are more than COMPACT_ABOVE
    (PostgreSQL, where every writing transaction adds a row). The sums stay: a
    concurrent compaction deletes disjoint rows (each returns the rows it deleted)."""
    if connection.dialect.name != "postgresql":
        return False
    rows = connection.execute(sa.select(sa.func.count()).select_from(table_changes)).scalar_one()
    if rows <= COMPACT_ABOVE:
        return False
    for name in (_INVENTORY, _SCHEDULER):
        connection.execute(_COMPACT, {"name": name})
    return True
