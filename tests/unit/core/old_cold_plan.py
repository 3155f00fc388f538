"""The cold plan's per-job code as it was before it was cut (helper planfast2, December
2026), verbatim, kept as the reference the new code is compared with
(test_cold_plan_reference.py): the add and its target made with keywords, the summary
counted change by change, has_open_end with isinstance checks, triggers built from
attribute reads and looked up twice, the WallClockCronTrigger repr from its parts, and
the engine's desired jobs made by `_desired` one by one."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.core.dst import WallClockCronTrigger
from reconciler.core.fires import FirePayload
from reconciler.core.memory import CoreMemory
from reconciler.core.plan import (
    Change,
    Fires,
    Target,
    _new_change,
    _new_content,
    _new_target,
    _no_fires,
)
from reconciler.core.state import (
    FIRE_MAX_INSTANCES,
    DesiredJob,
    JobContent,
    Revision,
    SchedulerJob,
    _new_scheduler_job,
)
from reconciler.core.triggers import (
    INTERVAL_ANCHOR,
    TriggerMemory,
    build_trigger,
    cron_source,
    describe_trigger,
    dst_policy,
)
from reconciler.core.vocabulary import Action, JobStatus
from reconciler.spec.cron import compile_cron
from reconciler.spec.model import CronSchedule, IntervalSchedule, JobSpec

# ---- core/plan.py ------------------------------------------------------------------


def _add(
    wanted: DesiredJob, revision: Revision, *, now: datetime, fires: Fires, memory: CoreMemory
) -> Change:
    target = _target(wanted, revision.commit, revision.dirty, memory, now=now, keep=False)
    return _new_change(
        action=Action.ADD,
        job=wanted.name,
        source=wanted.source,
        reason=f"declared in {wanted.source}:{wanted.line}, not scheduled yet"
        + (
            "; completed: no future fire time, it never fires"
            if target.status == JobStatus.COMPLETED
            else ""
        ),
        after=(after := _after(wanted, target)),
        fires_after=(
            fires(wanted.spec, now)
            if fires is not _no_fires and target.status == JobStatus.ACTIVE
            else ()
        ),
        target=target,
        after_key=after.key,
    )


def _after(wanted: DesiredJob, target: Target) -> JobContent:
    return _new_content(wanted.essence, wanted.spec_hash, target.status, wanted.source)


def _target(
    wanted: DesiredJob,
    commit: str | None,
    dirty: bool,
    memory: CoreMemory,
    *,
    now: datetime,
    keep: bool,
    status: JobStatus | None = None,
) -> Target:
    return _new_target(
        spec=wanted.spec,
        spec_hash=wanted.spec_hash,
        essence=wanted.essence,
        source=wanted.source,
        line=wanted.line,
        status=status or wanted.status(now=now, triggers=memory.triggers),
        revision=commit,
        revision_dirty=dirty,
        scheduler=memory.scheduler_job(wanted.found, spec_hash=wanted.spec_hash, revision=commit),
        keep_next_run_time=keep,
    )


def _summary(changes: list[Change]) -> dict[str, int]:
    """How many changes of each action."""
    summary = {action.value: 0 for action in Action}  # plain str keys: orjson takes them
    for change in changes:
        summary[change.action] += 1
    return summary


# ---- core/state.py, core/fires.py ----------------------------------------------------


def old_scheduler_job(
    spec: JobSpec,
    *,
    spec_hash: str,
    revision: str | None,
    triggers: TriggerMemory | None = None,
) -> SchedulerJob:
    """The `apscheduler_jobs` content for a job. `revision` is the revision that last
    CHANGED the job (kept in its inventory row), not the newest commit: a commit that
    leaves a job alone must not rewrite (and so re-time) its row. Determined completely
    by (spec_hash, revision), so a CoreMemory may remember it (core/memory.py)."""
    if triggers is None:
        trigger = build_trigger(spec)
        fingerprint = describe_trigger(trigger)
    else:
        trigger, fingerprint = triggers.trigger_and_fingerprint(spec)
    payload: FirePayload = old_fire_payload(spec, spec_hash=spec_hash, revision=revision)
    fields = spec.__dict__  # the model's field values, read quicker (see fire_payload)
    name = fields["name"]
    return _new_scheduler_job(
        id=name,
        trigger=trigger,
        fingerprint=fingerprint,
        kwargs={"job": name, "payload": payload},  # a fresh dict: not copied again
        misfire_grace_time=fields["misfire_grace_seconds"],
        coalesce=fields["coalesce"],
        max_instances=FIRE_MAX_INSTANCES,
    )


def old_fire_payload(spec: JobSpec, *, spec_hash: str, revision: str | None) -> FirePayload:
    # A literal: calling FirePayload (dict) with keywords cost twice as much, per job.
    # The fields read from the model's __dict__, where pydantic keeps their values: an
    # attribute of a model goes through its __getattr__ hook, unspecialised (a cold plan
    # of 10,000 jobs read 120,000 of them here; tests/unit/core/test_fields_read.py).
    fields = spec.__dict__
    return {
        "task": fields["task"],
        "args": list(fields["args"]),
        "kwargs": dict(fields["kwargs"]),
        "queue": fields["queue"],
        "spec_hash": spec_hash,
        "revision": revision,
        "idempotency_key": fields["idempotency_key"],
        "expires_seconds": fields["expires_seconds"],
        "time_limit_seconds": fields["time_limit_seconds"],
        "retries": fields["retries"],
        "retry_delay_seconds": fields["retry_delay_seconds"],
        "max_concurrent_runs": fields["max_concurrent_runs"],
        "misfire_grace_seconds": fields["misfire_grace_seconds"],
    }


# ---- core/triggers.py --------------------------------------------------------------


def _build(spec: JobSpec, *, with_jitter: bool) -> BaseTrigger:
    zone = ZoneInfo(spec.timezone)
    start = spec.zoned(spec.start) if spec.start else None
    end = spec.zoned(spec.end) if spec.end else None
    jitter = spec.jitter_seconds or None if with_jitter else None
    schedule = spec.schedule
    if isinstance(schedule, CronSchedule):
        return WallClockCronTrigger(
            cron=cron_source(schedule),
            timezone=spec.timezone,
            dst=dst_policy(spec),
            start=start,
            end=end,
            jitter=jitter,
        )
    if isinstance(schedule, IntervalSchedule):
        return IntervalTrigger(
            seconds=schedule.interval.total_seconds(),
            start_date=start or INTERVAL_ANCHOR.astimezone(zone),
            end_date=end,
            timezone=zone,
            jitter=jitter,
        )
    return DateTrigger(run_date=spec.zoned(schedule.at), timezone=zone)


def has_open_end(spec: JobSpec) -> bool:
    """True when the schedule fires for ever (no end, no year limit, not a one-off), so
    a future fire exists without computing one: the validator refused crons that never
    fire. Saves a fire-time computation per job per pass."""
    fields = spec.__dict__  # the model's field values, read quicker (core.fires)
    if fields["end"] is not None:
        return False
    schedule = fields["schedule"]
    if isinstance(schedule, IntervalSchedule):
        return True
    if not isinstance(schedule, CronSchedule):
        return False
    cron = schedule.__dict__["cron"]
    return compile_cron(cron if isinstance(cron, str) else cron.as_mapping()).years is None


class OldTriggerMemory(TriggerMemory):
    """TriggerMemory with its old look-ups (a spec's timing key from the spec)."""

    def trigger(self, spec: JobSpec, *, with_jitter: bool = True) -> BaseTrigger:
        """`build_trigger(spec)`, remembered."""
        key = self._timing_key(spec, with_jitter)
        trigger = self._triggers.get(key)
        if trigger is None:
            if len(self._triggers) >= self._limit:
                self._triggers.clear()
            trigger = self._triggers[key] = _build(spec, with_jitter=with_jitter)
        return trigger

    def trigger_and_fingerprint(self, spec: JobSpec) -> tuple[BaseTrigger, str]:
        """`(trigger(spec), fingerprint(trigger(spec)))` in one look-up of the spec's
        timing: what a scheduler row needs of every job a plan writes (a cold plan of
        100,000 jobs on ~900 schedules looked each up twice)."""
        key = self._timing_key(spec, True)
        known = self._described.get(key)
        if known is None:
            trigger = self._triggers.get(key)
            if trigger is None:
                trigger = self.trigger(spec)
            if len(self._described) >= self._limit:
                self._described.clear()
            known = self._described[key] = (trigger, self.fingerprint(trigger))
        return known

    def _timing_key(self, spec: JobSpec, with_jitter: bool) -> tuple[object, ...]:
        fields = spec.__dict__  # the model's field values, read quicker (core.fires)
        schedule = fields["schedule"]
        cron = schedule.__dict__.get("cron") if type(schedule) is CronSchedule else None
        return (
            # _schedule_key's first case inline: most jobs have one, and this runs per job.
            ("cron", cron) if type(cron) is str else self._schedule_key(schedule),
            fields["timezone"],
            fields["dst"],
            fields["start"],
            fields["end"],
            fields["jitter_seconds"] if with_jitter else 0,
        )


# ---- core/dst.py: WallClockCronTrigger.__repr__ --------------------------------------


def old_repr(self) -> str:
    parts = [f"cron={self.cron!r}", f"timezone={self.timezone!r}"]
    if self.dst is not None:
        parts.append(f"dst={self.dst.gap.value}/{self.dst.repeat.value}")
    if self.start is not None:
        parts.append(f"start={self.start.isoformat()!r}")
    if self.end is not None:
        parts.append(f"end={self.end.isoformat()!r}")
    if self.jitter:
        parts.append(f"jitter={self.jitter}")
    return f"<{type(self).__name__} ({', '.join(parts)})>"


# ---- engine/reconcile.py: _desired_jobs' list of one file's jobs ----------------------


def old_file_jobs(outcome, caches):
    from reconciler.engine.reconcile import _desired

    return [
        (job.name, _desired(job, caches.essences, compact=caches.compact)) for job in outcome.jobs
    ]
