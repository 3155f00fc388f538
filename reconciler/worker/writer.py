"""Write-behind for the hot path: `started` and `succeeded` rows, and the idempotency
keys' completion, in batches.

Why: a committed PostgreSQL write costs 1-4 ms on a small machine (fsync), a Redis round
trip 0.2-0.5 ms; done inline for every task they would cost more than many tasks. The
claim itself does not need them: Redis arbitrates between deliveries, and the ledger's
verdict (is the fire already final?) is a read. So those writes are queued and applied
by one thread per process, every `max_delay` seconds or `max_batch` items: the rows in one
transaction, then the keys (`complete_keys`, one Redis pipeline). Until its key is
completed, a succeeded fire's key stays "in progress" with its lease renewed, so a
duplicate delivery is refused all along.

Guarantees:
- per fire, `started` is applied before `succeeded` (one queue, see Ledger.write_batch);
- `flush()` returns once everything queued before it is applied: the synchronous writes
  (failed, retried, duplicate) call it first, so they never get overtaken;
- a batch that fails is retried once (a dropped pooled connection), then logged and
  counted (LEDGER_WRITE_FAILURES), never raised into a task;
- what a process that is killed (-9) had not flushed yet (at most `max_delay` seconds
  of updates) is lost: the run stays `started`/`published` in the ledger while Redis
  records completion; that is the price of the hot path, and bounded by `max_delay`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from reconciler.worker.ledger import Ledger, describe, record_failure

log = logging.getLogger(__name__)

STARTED, SUCCEEDED, KEY = "started", "succeeded", "key"


class LedgerWriter:
    """Batches deferred ledger writes on a daemon thread, started on first use (after a
    fork, in the process that uses it)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        complete_keys: Callable[[list[Any]], None] | None = None,
        max_delay: float = 0.05,
        max_batch: int = 500,
    ) -> None:
        self._ledger = ledger
        self._complete_keys = complete_keys
        self._max_delay = max_delay
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | threading.Event] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def started(self, run_id: str, *, worker: str, retries: int) -> None:
        self._put(
            STARTED,
            {"p_run_id": run_id, **self._ledger.started_values(worker=worker, retries=retries)},
        )

    def succeeded(self, run_id: str, *, result: Any) -> None:
        self._put(SUCCEEDED, {"p_run_id": run_id, **self._ledger.succeeded_values(result=result)})

    def complete_key(self, item: Any) -> None:
        """Queue `item` for `complete_keys`, called after the rows of its batch."""
        self._put(KEY, {"item": item})

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or given up). False on timeout."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _put(self, kind: str, item: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
                self._thread.start()
        self._queue.put((kind, item))

    def _run(self) -> None:
        while True:
            batch, markers = self._collect()
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set()

    def _collect(self) -> tuple[list[tuple[str, dict[str, Any]]], list[threading.Event]]:
        """Block for one item, then gather more for up to max_delay seconds. A flush
        marker ends the batch at once (someone is waiting)."""
        batch: list[tuple[str, dict[str, Any]]] = []
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

    def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        started = [item for kind, item in batch if kind == STARTED]
        succeeded = [item for kind, item in batch if kind == SUCCEEDED]
        keys = [item["item"] for kind, item in batch if kind == KEY]
        if started or succeeded:
            self._write_rows(started, succeeded)
        if keys and self._complete_keys is not None:
            self._complete_keys(keys)  # handles (logs) its own errors

    def _write_rows(self, started: list[dict[str, Any]], succeeded: list[dict[str, Any]]) -> None:
        for attempt in (1, 2):
            try:
                self._ledger.write_batch(started, succeeded)
                return
            except sa.exc.DBAPIError as error:
                # A pooled connection the server dropped is invalidated by SQLAlchemy:
                # the second attempt gets a fresh one.
                if attempt == 1 and error.connection_invalidated:
                    continue
                self._give_up(len(started) + len(succeeded), error)
                return
            except sa.exc.SQLAlchemyError as error:
                self._give_up(len(started) + len(succeeded), error)
                return

    def _give_up(self, count: int, error: Exception) -> None:
        record_failure("batch", count)
        log.error("ledger batch of %d writes failed: %s", count, describe(error, limit=300))
