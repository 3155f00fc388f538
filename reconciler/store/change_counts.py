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

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.store.own_writes import Snapshot
from reconciler.store.tables import apscheduler_jobs, scheduled_jobs, table_changes

_INVENTORY, _SCHEDULER = scheduled_jobs.name, apscheduler_jobs.name
# Past this many rows, a daemon folds them into one per table (the sum stays).
COMPACT_ABOVE = 200

# PostgreSQL: each table's identity (its oid: a table made again is another), whether
# its trigger is there and fires ALWAYS (also under session_replication_role = replica).
_IDENTITIES = """
SELECT t.name, coalesce(to_regclass(t.name)::oid::bigint, 0),
       EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = to_regclass(t.name)
               AND g.tgname = 'count_changes' AND g.tgenabled = 'A')
"""
_POSTGRES_TRIGGERS = sa.text(
    _IDENTITIES
    + """
FROM (VALUES (:inventory), (:scheduler)) AS t(name)
WHERE to_regclass('table_changes') IS NOT NULL
"""
)
# The same, each table's count and the statement's snapshot (store.own_writes), in one
# statement: for a caller that knows `table_changes` is there (naming a missing table
# fails the statement, and the transaction with it).
_POSTGRES_COUNTS = sa.text(
    _IDENTITIES
    + """,
       (SELECT coalesce(sum(c.changes), 0) FROM table_changes AS c WHERE c.table_name = t.name),
       pg_current_snapshot()::text
FROM (VALUES (:inventory), (:scheduler)) AS t(name)
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
    scheduler's rows. Equal counts of a table: nobody wrote it in between. `snapshot`:
    the one they were read in (PostgreSQL; store.own_writes), not part of the value."""

    inventory: tuple[int, int]
    scheduler: tuple[int, int]
    snapshot: Snapshot | None = field(default=None, compare=False)

    def plus(self, written: frozenset[str]) -> ChangeCounts:
        """These counts after a transaction that wrote the tables named in `written`
        commits (each writing transaction counts once per table)."""
        inventory, scheduler = _INVENTORY in written, _SCHEDULER in written
        return ChangeCounts(
            _plus(self.inventory, inventory), _plus(self.scheduler, scheduler), self.snapshot
        )


def _plus(count: tuple[int, int], wrote: bool) -> tuple[int, int]:
    return (count[0], count[1] + 1) if wrote else count


def read_change_counts(connection: Connection, *, known: bool = False) -> ChangeCounts | None:
    """The counts as this statement's snapshot sees them; None when they cannot be
    trusted here (module doc): the caller reads the tables. `known`: the caller's last
    read on this database found them (PostgreSQL: one statement instead of two; if
    `table_changes` was dropped since, it raises, and the caller's next read must not
    say `known`)."""
    if connection.dialect.name == "postgresql":
        return _read_postgres_counts(connection, known=known)
    if {name for (name,) in connection.execute(_SQLITE_OBJECTS)} >= _SQLITE_NEEDED:
        identities = {_INVENTORY: 0, _SCHEDULER: 0}
    else:
        return None
    sums = {name: int(total) for name, total in connection.execute(_SUMS)}
    return ChangeCounts(
        (identities[_INVENTORY], sums.get(_INVENTORY, 0)),
        (identities[_SCHEDULER], sums.get(_SCHEDULER, 0)),
    )


def _read_postgres_counts(connection: Connection, *, known: bool) -> ChangeCounts | None:
    names = {"inventory": _INVENTORY, "scheduler": _SCHEDULER}
    if not known:
        found = connection.execute(_POSTGRES_TRIGGERS, names)
        if {name for name, _, counted in found if counted} != {_INVENTORY, _SCHEDULER}:
            return None
    counts, snapshot = {}, None
    for name, identity, counted, total, seen in connection.execute(_POSTGRES_COUNTS, names):
        if counted:
            counts[name] = (int(identity), int(total))
        snapshot = Snapshot.parse(seen)
    if set(counts) != {_INVENTORY, _SCHEDULER}:
        return None
    return ChangeCounts(counts[_INVENTORY], counts[_SCHEDULER], snapshot)


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
