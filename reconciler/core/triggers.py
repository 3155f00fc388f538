"""From a job spec to an APScheduler trigger, its fingerprint and its next fire times.

APScheduler's trigger classes are pure computation, so they belong to the core. Two
choices made here keep re-applies from changing anything:
- interval triggers are anchored at the spec's `start`, or at INTERVAL_ANCHOR: the phase
  of a job never depends on when it was (re)applied, and every replica computes the same;
- the fingerprint of a trigger is its repr, which names every field that matters
  (expressions, time zone, start, end, jitter); drift checks compare fingerprints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.spec.cron import cron_fields
from reconciler.spec.model import CronSchedule, IntervalSchedule, JobSpec

INTERVAL_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)


def build_trigger(spec: JobSpec, *, with_jitter: bool = True) -> BaseTrigger:
    """The trigger APScheduler runs for `spec`. Raises ValueError for a schedule that the
    spec models accepted but APScheduler does not (should not happen: the models check)."""
    zone = ZoneInfo(spec.timezone)
    start = spec.zoned(spec.start) if spec.start else None
    end = spec.zoned(spec.end) if spec.end else None
    jitter = spec.jitter_seconds or None if with_jitter else None
    schedule = spec.schedule
    if isinstance(schedule, CronSchedule):
        source = schedule.cron if isinstance(schedule.cron, str) else schedule.cron.as_mapping()
        return CronTrigger(
            timezone=zone, start_date=start, end_date=end, jitter=jitter, **cron_fields(source)
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


def trigger_fingerprint(trigger: BaseTrigger) -> str:
    """A text equal for two triggers exactly when they fire at the same times."""
    return repr(trigger)


def next_fire_times(spec: JobSpec, *, after: datetime, count: int = 3) -> tuple[datetime, ...]:
    """The next `count` fire times strictly after `after` (without jitter: a preview)."""
    trigger = build_trigger(spec, with_jitter=False)
    times: list[datetime] = []
    previous: datetime | None = None
    moment = after + _EPSILON
    for _ in range(count * 4):  # bounded: a trigger may repeat a past time (DateTrigger)
        upcoming = trigger.get_next_fire_time(previous, moment)
        if upcoming is None or len(times) == count:
            break
        previous = upcoming
        if upcoming > after:
            times.append(upcoming)
            moment = upcoming + _EPSILON
    return tuple(times)


def first_fire_after(spec: JobSpec, *, now: datetime) -> datetime | None:
    """When a newly added or resumed job fires first: the first slot after `now`, never
    `now` itself (a schedule change must not cause an immediate extra run). None when the
    schedule has no future slot (a past one-off date, an end in the past)."""
    upcoming = build_trigger(spec).get_next_fire_time(None, now + _EPSILON)
    if upcoming is None or upcoming <= now:
        return None
    return upcoming


_EPSILON = timedelta(microseconds=1)
