"""FireExecutor: an APScheduler 3 executor that runs fires inline, with the slot's time.

APScheduler calls a job's function without saying which slot is being run; the fire id
needs it. This executor runs each due run time as its own call with
`scheduled_time=<aware datetime>` added to the job's kwargs, keeping APScheduler's
misfire check (a run time later than misfire_grace_time is skipped and reported as
EVENT_JOB_MISSED, here a FireMissedEvent carrying the payload) and its events.

The call runs in the scheduler's own thread, not in a thread pool: fire_job only puts
the slot on the Dispatcher's queue (microseconds), and handing 10,000 due slots of one
instant to pool threads cost more than the calls themselves (a thread hop, a future and
a lock per slot, twenty threads taking turns at the GIL with the scheduler loop).
APScheduler's max_instances count is not kept: a fire is over when fire_job returns,
and overlap is the ledger's business (max_concurrent_runs).

It also accounts for slots that would otherwise vanish without a trace:

- catch-up bound: with coalesce=False a scheduler that was down submits every missed
  run time; only the newest `max_catch_up_runs` are fired, the older ones are
  recorded 'missed' (reason 'catch_up_limit');
- coalesced slots: with coalesce=True APScheduler submits only the newest of several
  due run times; the others are recorded 'missed' (reason 'coalesced'), at most
  `missed_record_limit` per submission (the rest are only logged: a job every second
  that was down for a day must not write 86,400 rows in the scheduler's thread);

After `shutdown()`, a submission still runs: BackgroundScheduler.shutdown() runs one
more scheduling pass after stopping the executors, and a refused submission there is a
lost fire (APScheduler advances next_run_time anyway).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from traceback import format_tb

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job

from reconciler import metrics
from reconciler.core.fires import FirePayload
from reconciler.core.vocabulary import RunReason
from reconciler.dispatch.fire import current_dispatcher
from reconciler.dispatch.missed import FireMissedEvent
from reconciler.errors import NotLeaderError
from reconciler.logs import job_extra

log = logging.getLogger(__name__)

# (job name, payload, slots, reason) -> records them as missed.
MissedSink = Callable[[str, FirePayload, Sequence[datetime], str], None]


def dispatcher_sink(job: str, payload: FirePayload, slots: Sequence[datetime], reason: str) -> None:
    """The default sink: the installed Dispatcher (see fire.install_dispatcher)."""
    current_dispatcher().record_missed(
        job=job, payload=payload, scheduled_times=slots, reason=reason
    )


class FireExecutor(BaseExecutor):
    """`BackgroundScheduler(executors={"default": FireExecutor(...)})`."""

    def __init__(
        self,
        *,
        max_catch_up_runs: int,
        record_missed: MissedSink = dispatcher_sink,
        missed_record_limit: int = 1000,
    ) -> None:
        super().__init__()
        self._max_catch_up_runs = max_catch_up_runs
        self._record_missed = record_missed
        self._missed_record_limit = missed_record_limit

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        """Bound the catch-up, record what is dropped, run the rest (one call each) and
        dispatch their events, all before returning (see the module doc)."""
        run_times = list(run_times)
        if job.coalesce and run_times:
            self._record(job, self._coalesced_slots(job, run_times[-1]), RunReason.COALESCED)
        if len(run_times) > self._max_catch_up_runs:
            cut = len(run_times) - self._max_catch_up_runs
            self._record(job, run_times[:cut], RunReason.CATCH_UP_LIMIT)
            run_times = run_times[cut:]
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        assert self._scheduler is not None, "This executor has not been started yet"
        events = run_fire(job, job._jobstore_alias, run_times, self._logger.name)
        for event in events:
            self._scheduler._dispatch_event(event)

    def _coalesced_slots(self, job: Job, newest: datetime) -> list[datetime]:
        """Due run times APScheduler collapsed into `newest`: from the job's
        next_run_time (still the oldest due slot at submission) up to `newest`."""
        slots: list[datetime] = []
        moment = job.next_run_time
        while moment is not None and moment < newest:
            if len(slots) == self._missed_record_limit:
                log.warning(
                    "job %s: more than %d coalesced slots, the rest not recorded",
                    job.id,
                    len(slots),
                    extra=job_extra(job.id),
                )
                break
            slots.append(moment)
            moment = job.trigger.get_next_fire_time(moment, newest)
        return slots

    def _record(self, job: Job, slots: Sequence[datetime], reason: str) -> None:
        name, payload = job.kwargs.get("job"), job.kwargs.get("payload")
        if not slots or name is None or payload is None:
            return
        try:
            self._record_missed(name, payload, slots, reason)
        except Exception as error:  # noqa: BLE001 - accounting must never stop a fire
            log.warning(
                "could not record %d %s slots of %s: %r",
                len(slots),
                reason,
                name,
                error,
                extra=job_extra(name),
            )


def run_fire(
    job: Job, jobstore_alias: str, run_times: Sequence[datetime], logger_name: str
) -> list[JobExecutionEvent]:
    """APScheduler's `run_job`, calling the function once per run time with
    `scheduled_time=run_time`. Returns the events for the scheduler to dispatch."""
    events: list[JobExecutionEvent] = []
    logger = logging.getLogger(logger_name)
    for run_time in run_times:
        if _misfired(job, run_time):
            events.append(_missed_event(job, jobstore_alias, run_time))
            logger.warning('Run time of job "%s" was missed (%s)', job, run_time)
            continue
        try:
            value = job.func(*job.args, **job.kwargs, scheduled_time=run_time)
        except NotLeaderError as refusal:
            # Fencing working as designed (a process that stopped leading): one WARNING
            # line with a count, no traceback (STALE_FIRES).
            STALE_FIRES.refused(str(refusal))
            events.append(
                JobExecutionEvent(
                    EVENT_JOB_ERROR, job.id, jobstore_alias, run_time, exception=refusal
                )
            )
        except BaseException:
            error, traceback = sys.exc_info()[1:]
            events.append(
                JobExecutionEvent(
                    EVENT_JOB_ERROR,
                    job.id,
                    jobstore_alias,
                    run_time,
                    exception=error,
                    traceback="".join(format_tb(traceback)),
                )
            )
            logger.exception('Job "%s" raised an exception', job)
            del traceback
        else:
            events.append(
                JobExecutionEvent(
                    EVENT_JOB_EXECUTED, job.id, jobstore_alias, run_time, retval=value
                )
            )
    return events


class StaleFireLog:
    """Counts fires refused by the fence and logs them as one WARNING line per
    `every` seconds: "refused N stale fires (...)" rather than a traceback each."""

    def __init__(self, every: float = 10.0) -> None:
        self._every = every
        self._lock = threading.Lock()
        self._count = 0
        self._logged_at: float | None = None

    def refused(self, reason: str) -> None:
        metrics.STALE_FIRES.inc()
        with self._lock:
            self._count += 1
            now = time.monotonic()
            if self._logged_at is not None and now - self._logged_at < self._every:
                return
            count, self._count, self._logged_at = self._count, 0, now
        log.warning("refused %d stale fire(s): %s", count, reason)

    def flush(self) -> None:
        """Log what was counted since the last line (the scheduler stopped)."""
        with self._lock:
            count, self._count, self._logged_at = self._count, 0, None
        if count:
            log.warning("refused %d more stale fire(s) before the scheduler stopped", count)


STALE_FIRES = StaleFireLog()


def _misfired(job: Job, run_time: datetime) -> bool:
    if job.misfire_grace_time is None:
        return False
    return datetime.now(UTC) - run_time > timedelta(seconds=job.misfire_grace_time)


def _missed_event(job: Job, jobstore_alias: str, run_time: datetime) -> JobExecutionEvent:
    name, payload = job.kwargs.get("job"), job.kwargs.get("payload")
    if name is None or payload is None:
        return JobExecutionEvent(EVENT_JOB_MISSED, job.id, jobstore_alias, run_time)
    return FireMissedEvent(job.id, jobstore_alias, run_time, job=name, payload=payload)
