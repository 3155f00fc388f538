"""Recording the slots APScheduler drops without running them.

APScheduler 3 skips a run time later than the job's misfire_grace_time with nothing
but a log line and an EVENT_JOB_MISSED event. `MissedRunRecorder` listens for that
event and records each such slot in the ledger as 'missed' (reason 'misfire').

Events carry the job id (= the job name) and the run time, not the job's kwargs.
FireExecutor emits its misses as `FireMissedEvent`, which carries the payload too; for
other events the payload is looked up through `lookup_payload` (e.g. the scheduler's
`get_job`, which raises for a row it cannot restore, where `get_all_jobs` and
`get_due_jobs` would delete it).

Coalesced slots (coalesce=True: several due run times collapsed into the last one)
never reach an event: FireExecutor detects them itself (see executor.py) and records
them as 'missed' with reason 'coalesced'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.base import BaseScheduler

from reconciler.core.fires import FirePayload
from reconciler.core.moments import rfc3339
from reconciler.core.vocabulary import RunReason
from reconciler.dispatch.dispatcher import Dispatcher
from reconciler.logs import job_extra

log = logging.getLogger(__name__)

PayloadLookup = Callable[[str], "tuple[str, FirePayload] | None"]


class FireMissedEvent(JobExecutionEvent):
    """EVENT_JOB_MISSED with the fire's job name and payload attached."""

    def __init__(
        self,
        job_id: str,
        jobstore: str,
        scheduled_run_time: datetime,
        *,
        job: str,
        payload: FirePayload,
    ) -> None:
        super().__init__(EVENT_JOB_MISSED, job_id, jobstore, scheduled_run_time)
        self.job = job
        self.payload = payload


class MissedRunRecorder:
    """An APScheduler listener: `scheduler.add_listener(recorder, EVENT_JOB_MISSED)`."""

    def __init__(self, *, dispatcher: Dispatcher, lookup_payload: PayloadLookup) -> None:
        self._dispatcher = dispatcher
        self._lookup = lookup_payload

    def __call__(self, event: JobExecutionEvent) -> None:
        if event.code != EVENT_JOB_MISSED:
            return
        found = self._payload_of(event)
        if found is None:
            log.warning(
                "missed slot of %r at %s: job unknown, not recorded",
                event.job_id,
                rfc3339(event.scheduled_run_time),
                extra=job_extra(event.job_id),
            )
            return
        job, payload = found
        log.info(
            "slot %s missed: beyond its misfire grace",
            rfc3339(event.scheduled_run_time),
            extra=job_extra(job),
        )
        self._dispatcher.record_missed(
            job=job,
            payload=payload,
            scheduled_times=[event.scheduled_run_time],
            reason=RunReason.MISFIRE,
        )

    def _payload_of(self, event: JobExecutionEvent) -> tuple[str, FirePayload] | None:
        if isinstance(event, FireMissedEvent):
            return event.job, event.payload
        try:
            return self._lookup(event.job_id)
        except Exception as error:  # noqa: BLE001 - a listener must never break the scheduler
            log.warning("looking up missed job %r failed: %r", event.job_id, error)
            return None


def scheduler_payload_lookup(scheduler: BaseScheduler) -> PayloadLookup:
    """A PayloadLookup over a running APScheduler (`get_job`), for jobs calling fire_job."""

    def lookup(job_id: str) -> tuple[str, FirePayload] | None:
        job = scheduler.get_job(job_id)
        if job is None or "payload" not in job.kwargs:
            return None
        return str(job.kwargs["job"]), job.kwargs["payload"]

    return lookup
