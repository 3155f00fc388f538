"""What the daemon's own scheduler wrote to `apscheduler_jobs`, so that its next pass
need not scan the table to find it (store.fingerprint's scan: at 100,000 jobs most of a
pass while the scheduler fires, which it always does).

The job store (store.jobstore) adds a WriteBack to the log once each write-back
transaction has COMMITTED: its id (`txid_current()`, the key of its `table_changes` row)
and what it wrote: the rows that hold the same job as before but for their next run
time (with their new row version), and the ids of any other row it wrote. The pass
takes the log BEFORE it reads the change counts (store.change_counts), so every write
taken is visible to that read. Then (`explained`):

- The scheduler's count moved by one for each transaction that wrote the table and
  committed between the snapshot the cached state was read at and this one (triggers:
  each writing transaction adds one, whoever runs it; a compaction keeps the sum).
- The write-backs visible now and not then are known to be such transactions.
- So when the count moved by exactly their number (the pass's own write aside, counted
  by `ChangeCounts.plus`), nobody else wrote the table: the cached rows patched with
  those write-backs (and the rows the last pass wrote itself, read again by id) are the
  table. Any other writer (a CLI apply, a hand UPDATE, a rewind, a write-back whose
  report came late) makes the numbers differ, and the pass scans as before.

Visibility is decided from the snapshots themselves (`Snapshot`, PostgreSQL's
`pg_current_snapshot()`): a committed transaction is visible in a snapshot when its id
is below the snapshot's xmin, or below its xmax and not in progress then.
PostgreSQL only: on SQLite the counts count rows, not transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

# Past this many rows logged since the last pass took them, the log is dropped and the
# next pass scans (a daemon whose passes stopped must not grow without bound).
LOG_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A PostgreSQL snapshot (`pg_current_snapshot()::text`, 'xmin:xmax:xip,...')."""

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, running = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in running.split(",") if x))

    def sees(self, txid: int) -> bool:
        """Whether the changes of committed transaction `txid` are visible in it."""
        return txid < self.xmin or (txid < self.xmax and txid not in self.running)


@dataclass(frozen=True, slots=True)
class WriteBack:
    """One committed write-back: its transaction, the rows it moved to a new next run
    time only (id, row version, hash of (id, version) as store.fingerprint sums it, next
    run time), and the ids of rows it wrote otherwise (the job changed, the row deleted):
    those are read again."""

    txid: int
    moved: tuple[tuple[str, int, int, float | None], ...] = ()
    other: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.moved) + len(self.other) + 1


class OwnWrites:
    """The log: written by the scheduler's thread, taken by the pass (thread-safe)."""

    def __init__(self, *, limit: int = LOG_LIMIT) -> None:
        self._lock = threading.Lock()
        self._writes: list[WriteBack] = []
        self._size = 0
        self._limit = limit
        self._lost = False  # some were dropped: the next take is not usable

    def add(self, write: WriteBack) -> None:
        """Call once the write's transaction has committed, never before."""
        with self._lock:
            if self._lost:
                return
            self._writes.append(write)
            self._size += write.size
            if self._size > self._limit:
                self._writes, self._size, self._lost = [], 0, True

    def lose(self) -> None:
        """A write-back whose outcome is unknown (its commit failed): the next take is
        unusable (its pass scans; harmless, never needed for correctness)."""
        with self._lock:
            self._writes, self._size, self._lost = [], 0, True

    def take(self) -> list[WriteBack] | None:
        """Every write logged since the last take, in commit order; None when some were
        dropped (the caller scans instead)."""
        with self._lock:
            writes, lost = self._writes, self._lost
            self._writes, self._size, self._lost = [], 0, False
        return None if lost else writes

    def put_back(self, writes: Iterable[WriteBack]) -> None:
        """Writes taken but not visible to the pass's snapshot yet: the next take
        returns them first."""
        writes = list(writes)
        if not writes:
            return
        with self._lock:
            if not self._lost:
                self._writes[:0] = writes
                self._size += sum(write.size for write in writes)


def explained(
    before: tuple[int, int],
    after: tuple[int, int],
    since: Snapshot,
    now: Snapshot,
    writes: list[WriteBack],
) -> tuple[list[WriteBack], list[WriteBack]] | None:
    """(the writes to apply, the writes to keep for the next pass) when the scheduler's
    change count going from `before` (the cached state's, read at `since`, plus the
    pass's own write) to `after` (read at `now`) is exactly these write-backs; None when
    anyone else wrote the table (or it was made again: another identity)."""
    if before[0] != after[0]:
        return None
    new = [write for write in writes if now.sees(write.txid) and not since.sees(write.txid)]
    later = [write for write in writes if not now.sees(write.txid)]
    if after[1] - before[1] != len(new):
        return None
    return new, later
