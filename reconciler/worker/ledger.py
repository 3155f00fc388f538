"""The worker's writes to the run ledger (`job_runs`), one short transaction each.

The dispatcher inserted the row (id = fire id = Celery task id) before publishing; the
worker moves it started -> succeeded / failed / retried, or counts a duplicate delivery.

The ledger is the AUTHORITY on whether a fire already ran: `start` refuses a row in a
final status (succeeded, failed), which covers Redis having lost an idempotency key.

Failure policy: a ledger write that fails (database down, lock timeout) is logged and
counted (LEDGER_WRITE_FAILURES) and never raised into the task: losing a status update is
better than losing the task's result or running it again. `start` then answers UNKNOWN
and the task runs, guarded by Redis alone.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler import metrics
from reconciler.redact import redact
from reconciler.store.tables import job_runs

log = logging.getLogger(__name__)

LEDGER_WRITE_FAILURES = metrics.LEDGER_WRITE_FAILURES

# Statuses after which a fire must not execute again.
FINAL_STATUSES = ("succeeded", "failed")
SUMMARY_LIMIT = 500
ERROR_LIMIT = 1000


class Start(enum.Enum):
    STARTED = "started"  # row moved to started: run
    NO_ROW = "no_row"  # no ledger row (published outside the dispatcher): run, log it
    REFUSED = "refused"  # final (or, when exclusive, already started): do not run
    UNKNOWN = "unknown"  # the ledger could not be read: run (Redis still guards)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """`job_runs` writes for one worker process. `clock` is a test seam."""

    def __init__(
        self,
        engine: Engine,
        *,
        reader: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """`reader` (default `engine`) serves `peek`; give it an engine created with
        isolation_level="AUTOCOMMIT": one round trip per read, and no isolation level to
        set and reset on every checkout (measured: 83 instead of 140 µs CPU per read)."""
        self.engine = engine
        self._reader = reader or engine
        self._clock = clock

    def dispose(self, *, close: bool = True) -> None:
        """Drop pooled connections; `close=False` after a fork (the parent owns them)."""
        self.engine.dispose(close=close)
        if self._reader is not self.engine:
            self._reader.dispose(close=close)

    def start(
        self, run_id: str, *, worker: str, retries: int, exclusive: bool
    ) -> tuple[Start, str | None]:
        """Move the row to `started` unless it is final; returns the outcome and, when
        REFUSED, the status found. `exclusive` also refuses a row already `started`: the
        ledger is then the claim itself (no Redis guard)."""
        blocked = [*FINAL_STATUSES, "started"] if exclusive else list(FINAL_STATUSES)
        now = self._clock()
        statement = (
            sa.update(job_runs)
            .where(job_runs.c.id == run_id, job_runs.c.status.not_in(blocked))
            .values(
                status="started",
                started_at=now,
                finished_at=None,
                worker=worker,
                retries=retries,
                updated_at=now,
            )
        )
        try:
            with self.engine.begin() as connection:
                if connection.execute(statement).rowcount:
                    return Start.STARTED, "started"
                status = connection.execute(
                    sa.select(job_runs.c.status).where(job_runs.c.id == run_id)
                ).scalar_one_or_none()
        except sa.exc.SQLAlchemyError as error:
            _failed("start", run_id, error)
            return Start.UNKNOWN, None
        return (Start.NO_ROW, None) if status is None else (Start.REFUSED, status)

    def peek(self, run_id: str) -> tuple[Start, str | None]:
        """Whether the fire may start, by reading its status (one round trip, no write):
        STARTED (may start), REFUSED (final), NO_ROW, or UNKNOWN (database error)."""
        try:
            with self._reader.connect() as connection:
                status = connection.execute(_PEEK, {"p_run_id": run_id}).scalar_one_or_none()
        except sa.exc.SQLAlchemyError as error:
            _failed("peek", run_id, error)
            return Start.UNKNOWN, None
        if status is None:
            return Start.NO_ROW, None
        return (Start.REFUSED, status) if status in FINAL_STATUSES else (Start.STARTED, status)

    def started_values(self, *, worker: str, retries: int) -> dict[str, Any]:
        """Parameters of a deferred `started` write (see write_batch), timed now."""
        now = self._clock()
        return {"p_started_at": now, "p_worker": worker, "p_retries": retries, "p_updated_at": now}

    def succeeded_values(self, *, result: Any) -> dict[str, Any]:
        """Parameters of a deferred `succeeded` write (see write_batch), timed now."""
        now = self._clock()
        return {"p_finished_at": now, "p_summary": summarize(result), "p_updated_at": now}

    def write_batch(self, started: list[dict[str, Any]], succeeded: list[dict[str, Any]]) -> None:
        """Apply deferred writes in one transaction. Each item is
        `{"p_run_id": id, **<kind>_values(...)}`. A fire started and succeeded within the
        batch (a short task) takes ONE update; otherwise every `started` goes before every
        `succeeded` (a fire's start is always queued before its success, so per-row order
        holds). A `started` never overwrites a final status. Raises SQLAlchemyError."""
        done = {item["p_run_id"]: item for item in succeeded}
        both = [{**item, **done[item["p_run_id"]]} for item in started if item["p_run_id"] in done]
        merged = {item["p_run_id"] for item in both}
        started = [item for item in started if item["p_run_id"] not in merged]
        succeeded = [item for item in succeeded if item["p_run_id"] not in merged]
        with self.engine.begin() as connection:
            for statement, items in (
                (_STARTED_LATER, started),
                (_SUCCEEDED_LATER, succeeded),
                (_STARTED_AND_SUCCEEDED_LATER, both),
            ):
                if items:
                    connection.execute(statement, items)

    def succeeded(self, run_id: str, *, result: Any) -> None:
        self._finish(run_id, "succeeded", result_summary=summarize(result), error=None)

    def failed(self, run_id: str, *, error: BaseException, worker: str | None = None) -> None:
        values: dict[str, Any] = {"error": describe(error)}
        if worker:
            values["worker"] = worker
        self._finish(run_id, "failed", **values)

    def retried(self, run_id: str, *, error: BaseException, retries: int) -> None:
        """A failed attempt whose retry is about to be published (written BEFORE the
        publish, so that the retry can never find the row still `started`)."""
        self._write(
            "retried",
            run_id,
            status="retried",
            error=describe(error),
            retries=retries,
            finished_at=self._clock(),
        )

    def duplicate(self, run_id: str, *, reason: str, own_fire: bool) -> None:
        """Count a delivery that was not executed. A delivery of the fire that holds the
        key only bumps `duplicates`; another fire sharing the key (an explicit idempotency
        template) is itself recorded as `skipped` with the reason."""
        values: dict[str, Any] = {"duplicates": job_runs.c.duplicates + 1}
        if not own_fire:
            values.update(status="skipped", reason=reason, finished_at=self._clock())
        self._write("duplicate", run_id, **values)

    def expired(self, run_id: str) -> None:
        """The message expired before a worker took it (never ran)."""
        statement = (
            sa.update(job_runs)
            .where(job_runs.c.id == run_id, job_runs.c.status.not_in(FINAL_STATUSES))
            .values(
                status="expired",
                reason="expired before a worker took it",
                finished_at=self._clock(),
                updated_at=self._clock(),
            )
        )
        try:
            with self.engine.begin() as connection:
                connection.execute(statement)
        except sa.exc.SQLAlchemyError as error:
            _failed("expired", run_id, error)

    def _finish(self, run_id: str, status: str, **values: Any) -> None:
        self._write(status, run_id, status=status, finished_at=self._clock(), **values)

    def _write(self, operation: str, run_id: str, **values: Any) -> None:
        statement = (
            sa.update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(updated_at=self._clock(), **values)
        )
        try:
            with self.engine.begin() as connection:
                connection.execute(statement)
        except sa.exc.SQLAlchemyError as error:
            _failed(operation, run_id, error)


# Built once: constructing a statement per call costs more than executing it.
_PEEK = sa.select(job_runs.c.status).where(job_runs.c.id == sa.bindparam("p_run_id"))
_STARTED_LATER = (
    sa.update(job_runs)
    .where(
        job_runs.c.id == sa.bindparam("p_run_id"),
        # Not NOT IN: an expanding IN list cannot be used with executemany.
        *(job_runs.c.status != final for final in FINAL_STATUSES),
    )
    .values(
        status="started",
        started_at=sa.bindparam("p_started_at"),
        finished_at=None,
        worker=sa.bindparam("p_worker"),
        retries=sa.bindparam("p_retries"),
        updated_at=sa.bindparam("p_updated_at"),
    )
)
_SUCCEEDED_LATER = (
    sa.update(job_runs)
    .where(job_runs.c.id == sa.bindparam("p_run_id"))
    .values(
        status="succeeded",
        finished_at=sa.bindparam("p_finished_at"),
        result_summary=sa.bindparam("p_summary"),
        error=None,
        updated_at=sa.bindparam("p_updated_at"),
    )
)

_STARTED_AND_SUCCEEDED_LATER = (
    sa.update(job_runs)
    .where(
        job_runs.c.id == sa.bindparam("p_run_id"),
        *(job_runs.c.status != final for final in FINAL_STATUSES),
    )
    .values(
        status="succeeded",
        started_at=sa.bindparam("p_started_at"),
        worker=sa.bindparam("p_worker"),
        retries=sa.bindparam("p_retries"),
        finished_at=sa.bindparam("p_finished_at"),
        result_summary=sa.bindparam("p_summary"),
        error=None,
        updated_at=sa.bindparam("p_updated_at"),
    )
)


def _failed(operation: str, run_id: str, error: Exception) -> None:
    record_failure(operation)
    log.error("ledger %s failed for run %s: %s", operation, run_id, describe(error))


def record_failure(operation: str, count: int = 1) -> None:
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
