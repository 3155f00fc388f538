"""Write-behind for the ledger's final writes (succeeded, failed, retried, duplicate)
and the idempotency keys' completion, in batches, retried until the database answers.

Why batches: a committed PostgreSQL write waits for an fsync and a Redis write for a
round trip; done inline for every task they would cost more than many tasks do. The
claim itself is synchronous (worker/claims.py); what follows it is queued and applied by
one thread per process, every `max_delay` seconds or `max_batch` items: the rows in one
transaction, then the keys (`complete_keys`, one Redis pipeline).

Why retried without end: a dropped write leaves a run `started` for ever (it blocked
its job's later slots as overlaps for an hour, issue 17). While the database does not
answer, the batch and everything queued behind it wait in memory (the SPOOL) and the
batch is retried with backoff (RETRY_DELAYS, then every RETRY_CAP seconds); meanwhile
the process keeps renewing the leases of those runs (`on_applied` tells it when to
stop), so neither a redelivery nor the leader's reaper takes them over. Bounds:
- a run's final status lands within RETRY_CAP + max_delay seconds of the database
  answering again, whatever the outage's length (README "Failure bounds");
- the spool holds at most `spool_limit` writes: past it new writes are DROPPED, counted
  (reconciler_ledger_write_failures_total{operation="spool_full"}) and logged; the
  reaper then closes those runs as lost once their leases lapse.
`reconciler_ledger_spooled_writes` shows the writes waiting. One WARNING when the
database stops answering, one when it is back (with the count and the outage's length).

Errors that are not about reaching the database (a constraint, a bug) are not retried:
the batch is logged, counted and dropped, as before.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from reconciler import metrics
from reconciler.core.vocabulary import TaskOutcome
from reconciler.store.ledger import FINAL_WRITES
from reconciler.store.sessions import unreachable
from reconciler.worker.claims import Ledger, count_ledger_failure, describe

log = logging.getLogger(__name__)

KEY = "key"
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0)
RETRY_CAP = 1.0
SPOOL_LIMIT = 100_000

Item = tuple[str, dict[str, Any]]


class LedgerWriter:
    """Batches final ledger writes on a daemon thread, started on first use (after a
    fork, in the process that uses it). `on_applied(run_ids)` is called after the rows
    of a batch are committed."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        complete_keys: Callable[[list[Any]], None] | None = None,
        on_applied: Callable[[list[str]], None] | None = None,
        max_delay: float = 0.05,
        max_batch: int = 500,
        spool_limit: int = SPOOL_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ledger = ledger
        self._complete_keys = complete_keys
        self._on_applied = on_applied
        self._max_delay = max_delay
        self._max_batch = max_batch
        self._spool_limit = spool_limit
        self._sleep = sleep
        self._queue: queue.Queue[Item | threading.Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0  # writes queued or being retried (the spool)
        self._down_since: float | None = None

    def write(self, kind: str, params: dict[str, Any]) -> None:
        """Queue one write: `kind` is a key of FINAL_WRITES, `params` its parameters
        (Ledger.<kind>_values)."""
        self._put(kind, params)

    def complete_key(self, item: Any) -> None:
        """Queue `item` for `complete_keys`, called after the rows of its batch."""
        self._put(KEY, {"item": item})

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written. False on timeout (the database
        does not answer: the writes stay spooled)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    @property
    def pending(self) -> int:
        return self._pending

    def _put(self, kind: str, item: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
                self._thread.start()
            if kind != KEY:
                if self._pending >= self._spool_limit:
                    count_ledger_failure("spool_full")
                    log.error(
                        "ledger spool full (%d writes): %s of run %s dropped",
                        self._pending,
                        kind,
                        item.get("p_run_id"),
                    )
                    return
                self._pending += 1
                metrics.LEDGER_SPOOLED.set(self._pending)
        self._queue.put((kind, item))

    def _run(self) -> None:
        while True:
            batch, markers = self._collect()
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set()

    def _collect(self) -> tuple[list[Item], list[threading.Event]]:
        """Block for one item, then gather more for up to max_delay seconds. A flush
        marker ends the batch at once (someone is waiting)."""
        batch: list[Item] = []
        markers: list[threading.Event] = []
        item = self._queue.get()
        deadline = None
        while True:
            if isinstance(item, threading.Event):
                markers.append(item)
                return batch, markers
            batch.append(item)
            if len(batch) >= self._max_batch:
                return batch, markers
            if deadline is None:
                deadline = time.monotonic() + self._max_delay
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch, markers
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return batch, markers

    def _write(self, batch: list[Item]) -> None:
        rows = [(kind, item) for kind, item in batch if kind != KEY]
        keys = [item["item"] for kind, item in batch if kind == KEY]
        if rows:
            self._write_rows(rows)
        if keys and self._complete_keys is not None:
            self._complete_keys(keys)  # handles (logs) its own errors

    def _write_rows(self, rows: list[Item]) -> None:
        attempt = 0
        while True:
            try:
                self._apply(rows)
                break
            except sa.exc.SQLAlchemyError as error:
                if not unreachable(error):
                    count_ledger_failure("batch", len(rows))
                    log.error(
                        "ledger batch of %d writes failed: %s", len(rows), describe(error, 300)
                    )
                    break
                self._outage(error)
                self._sleep(RETRY_DELAYS[attempt] if attempt < len(RETRY_DELAYS) else RETRY_CAP)
                attempt += 1
        if self._down_since is not None:
            log.warning(
                "ledger reachable again after %.1f s: %d spooled writes applied",
                time.monotonic() - self._down_since,
                self._pending,
            )
            self._down_since = None
        with self._lock:
            self._pending -= len(rows)
            metrics.LEDGER_SPOOLED.set(self._pending)
        if self._on_applied is not None:
            self._on_applied(
                [item["p_run_id"] for kind, item in rows if kind != TaskOutcome.DUPLICATE]
            )

    def _apply(self, rows: list[Item]) -> None:
        """One transaction; one executemany per kind, in first-seen order (a run gets
        one final write per attempt; duplicates only count)."""
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for kind, item in rows:
            by_kind.setdefault(kind, []).append(item)
        with self._ledger.engine.begin() as connection:
            for kind, items in by_kind.items():
                connection.execute(FINAL_WRITES[kind], items)

    def _outage(self, error: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            count_ledger_failure("unreachable")
            log.warning(
                "ledger unreachable, %d writes spooled and retried until it answers: %s",
                self._pending,
                describe(error, 300),
            )
