"""The worker's claim on the run ledger (`job_runs`), one short transaction each; the
statements themselves are `store.ledger`'s.

The dispatcher inserted the row (id = fire id = Celery task id) before publishing; the
worker moves it started -> succeeded / failed / retried, or counts a duplicate delivery.

The ledger is the AUTHORITY on whether a delivery may execute: `claim` is a
compare-and-set of the row to `started` with a fresh ATTEMPT token and a LEASE
(`lease_until`), whatever Redis said. It refuses:
- a row in a final status (succeeded, failed): the fire ran (Redis may have forgotten);
- a `started` row whose lease is alive: another execution holds it (BUSY, a duplicate).
A `started` row whose lease passed (its worker stopped renewing it: dead, or cut off
from the database for longer than the lease) is TAKEN OVER, and `takeovers` counts it;
so is a row the leader's reaper closed as lost (`RunReason.LOST`), whose holder never
reported. The holder renews its lease while it runs (`LeaseKeeper`), and its final write
applies only while the row still carries its attempt (`attempt = :token`): an execution
that lost its claim can never overwrite the one that took it over.

Failure policy: `claim` raises nothing; a database error answers UNKNOWN (the caller
retries: no execution without a claim). The final writes are queued on the
LedgerWriter, which retries them until the database answers.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler import metrics
from reconciler.core.moments import as_utc
from reconciler.core.vocabulary import FINAL_RUN_STATUSES, RunReason, RunStatus
from reconciler.redact import redact
from reconciler.store import ledger as runs

log = logging.getLogger(__name__)

LEDGER_WRITE_FAILURES = metrics.LEDGER_WRITE_FAILURES

SUMMARY_LIMIT = 500
ERROR_LIMIT = 1000


class Start(enum.Enum):
    STARTED = "started"  # claimed: run
    TAKEN_OVER = "taken_over"  # claimed from an expired lease (or a lost run): run
    NO_ROW = "no_row"  # no ledger row (published outside the dispatcher): run, log it
    REFUSED = "refused"  # final: do not run
    BUSY = "busy"  # a live lease of another execution holds it: do not run (yet)
    UNKNOWN = "unknown"  # the ledger could not be read: retry, never run unclaimed

    @property
    def runs(self) -> bool:
        return self in (Start.STARTED, Start.TAKEN_OVER, Start.NO_ROW)


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of `Ledger.claim`: what was found (status, the holder's attempt and
    retries, seconds left on its lease)."""

    outcome: Start
    status: str | None = None
    holder: str | None = None
    holder_retries: int = 0
    lease_left: float = 0.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_attempt(hostname: str, pid: int | None = None) -> str:
    """A claim token: `host/pid/random`. The worker's main process frees the lease of a
    pool process it lost by the `host/pid/` prefix (see `release_lease`)."""
    return f"{attempt_prefix(hostname, pid)}{uuid.uuid4().hex[:12]}"


def attempt_prefix(hostname: str, pid: int | None = None) -> str:
    return f"{hostname[:100]}/{os.getpid() if pid is None else pid}/"


class Ledger:
    """`job_runs` writes for one worker process. `clock` is a test seam."""

    def __init__(
        self,
        engine: Engine,
        *,
        reader: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """`reader` (default `engine`) serves the claim's read; give it an engine created
        with isolation_level="AUTOCOMMIT": one round trip per read."""
        self.engine = engine
        self._reader = reader or engine
        self._clock = clock

    def dispose(self, *, close: bool = True) -> None:
        """Drop pooled connections; `close=False` after a fork (the parent owns them)."""
        self.engine.dispose(close=close)
        if self._reader is not self.engine:
            self._reader.dispose(close=close)

    def claim(
        self, run_id: str, *, attempt: str, worker: str, retries: int, lease_seconds: float
    ) -> Claim:
        """Compare-and-set the row to `started` for `attempt` (see the module doc).
        Never raises: a database error is UNKNOWN."""
        try:
            # The common case in one round trip: a row nobody has started.
            now = self._clock()
            with self.engine.begin() as connection:
                if runs.claim_fresh(
                    connection,
                    run_id,
                    attempt=attempt,
                    until=now + timedelta(seconds=lease_seconds),
                    now=now,
                    worker=worker,
                    retries=retries,
                ):
                    return Claim(Start.STARTED)
            for _ in range(5):  # lost a race with another claimer: judge the new row
                claim = self._try_claim(run_id, attempt, worker, retries, lease_seconds)
                if claim is not None:
                    return claim
        except sa.exc.SQLAlchemyError as error:
            # Counted, not logged: the caller retries and logs once a minute.
            count_ledger_failure("claim")
            return Claim(Start.UNKNOWN, status=describe(error, 200))
        return Claim(Start.BUSY, status=RunStatus.STARTED)

    def _try_claim(
        self, run_id: str, attempt: str, worker: str, retries: int, lease_seconds: float
    ) -> Claim | None:
        with self._reader.connect() as connection:
            row = runs.read_claim(connection, run_id)
        if row is None:
            return Claim(Start.NO_ROW)
        now = self._clock()
        lease_left = (
            0.0 if row.lease_until is None else (as_utc(row.lease_until) - now).total_seconds()
        )
        found = {
            "status": row.status,
            "holder": row.attempt,
            "holder_retries": row.retries,
            "lease_left": max(lease_left, 0.0),
        }
        lost = row.status == RunStatus.FAILED and row.reason == RunReason.LOST
        if row.status in FINAL_RUN_STATUSES and not lost:
            return Claim(Start.REFUSED, **found)
        if row.status == RunStatus.STARTED and lease_left > 0:
            return Claim(Start.BUSY, **found)
        takeover = row.status == RunStatus.STARTED or lost
        with self.engine.begin() as connection:
            if not runs.take_claim(
                connection,
                run_id,
                found_status=row.status,
                found_attempt=row.attempt,
                attempt=attempt,
                until=now + timedelta(seconds=lease_seconds),
                now=now,
                worker=worker,
                retries=retries,
                takeover=takeover,
            ):
                return None
        if takeover:
            metrics.RUN_TAKEOVERS.inc()
            log.warning(
                "fire %s taken over from attempt %s (%s, lease passed %.1f s ago)",
                run_id,
                row.attempt,
                "reaped as lost" if lost else "started",
                -lease_left,
            )
            return Claim(Start.TAKEN_OVER, **found)
        return Claim(Start.STARTED, **found)

    def renew(self, held: Mapping[str, str], *, lease_seconds: float) -> None:
        """Extend the leases of the runs this process holds (run id -> attempt), one
        executemany. Raises SQLAlchemyError."""
        until = self._clock() + timedelta(seconds=lease_seconds)
        with self.engine.begin() as connection:
            runs.renew_leases(connection, held, until=until)

    def release_lease(self, run_id: str, *, prefix: str) -> None:
        """End now the lease of a run held by a lost process (attempts `prefix*`), so a
        redelivery takes it over at once instead of after the lease."""
        try:
            with self.engine.begin() as connection:
                runs.release_lease(connection, run_id, prefix=prefix, now=self._clock())
        except sa.exc.SQLAlchemyError as error:
            _failed("release", run_id, error)

    def failed_lost(self, run_id: str, *, prefix: str, error: BaseException) -> None:
        """A lost process's attempt (attempts `prefix*`) failed (a hard time limit): the
        row is failed unless a redelivery has taken it over meanwhile."""
        try:
            with self.engine.begin() as connection:
                runs.fail_lost(
                    connection, run_id, prefix=prefix, error=describe(error), now=self._clock()
                )
        except sa.exc.SQLAlchemyError as failure:
            _failed("failed", run_id, failure)

    # --- final writes, as parameters for the LedgerWriter ---------------------------
    def succeeded_values(self, run_id: str, *, attempt: str, result: Any) -> dict[str, Any]:
        return self._final_values(run_id, attempt, p_summary=summarize(result))

    def failed_values(
        self, run_id: str, *, attempt: str, error: BaseException, worker: str
    ) -> dict[str, Any]:
        return self._final_values(run_id, attempt, p_error=describe(error), p_worker=worker)

    def retried_values(
        self, run_id: str, *, attempt: str, error: BaseException, retries: int
    ) -> dict[str, Any]:
        return self._final_values(run_id, attempt, p_error=describe(error), p_retries=retries)

    def _final_values(self, run_id: str, attempt: str, **outcome: Any) -> dict[str, Any]:
        """The parameters of a final write: the run and attempt it closes, its outcome, and
        one clock reading for both its finish and its row version."""
        now = self._clock()
        return {
            "p_run_id": run_id,
            "p_attempt": attempt,
            **outcome,
            "p_finished_at": now,
            "p_updated_at": now,
        }

    def duplicate_values(self, run_id: str, *, reason: str, own_fire: bool) -> dict[str, Any]:
        now = self._clock()
        return {
            "p_run_id": run_id,
            "p_own": own_fire,
            "p_reason": reason,
            "p_updated_at": now,
        }

    def expired(self, run_id: str) -> None:
        """The message expired before a worker took it (never ran)."""
        try:
            with self.engine.begin() as connection:
                runs.expire_run(connection, run_id, now=self._clock())
        except sa.exc.SQLAlchemyError as error:
            _failed("expired", run_id, error)


def _failed(operation: str, run_id: str, error: Exception) -> None:
    count_ledger_failure(operation)
    log.error("ledger %s failed for run %s: %s", operation, run_id, describe(error))


def count_ledger_failure(operation: str, count: int = 1) -> None:
    LEDGER_WRITE_FAILURES.labels(operation).inc(count)


def summarize(result: Any, limit: int = SUMMARY_LIMIT) -> str:
    """The result as redacted JSON, cut to `limit` characters (an ellipsis marks a cut)."""
    text = json.dumps(redact(result), default=str, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(error: BaseException, limit: int = ERROR_LIMIT) -> str:
    """`Type: message`, one line, no traceback (tracebacks go to the logs)."""
    message = " ".join(str(error).split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
