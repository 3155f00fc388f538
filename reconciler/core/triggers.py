"""From a job spec to an APScheduler trigger, its fingerprint and its next fire times.

APScheduler's trigger classes are pure computation, so they belong to the core. Two
choices made here keep re-applies from changing anything:
- interval triggers are anchored at the spec's `start`, or at INTERVAL_ANCHOR: the phase
  of a job never depends on when it was (re)applied, and every replica computes the same;
- the fingerprint of a trigger is its repr, which names every field that matters
  (expressions, time zone, start, end, jitter); drift checks compare fingerprints.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.core.dst import WallClockCronTrigger
from reconciler.core.memo import IdentityMemo
from reconciler.core.schedule import DstPolicy, Fire, Placement, resolve_policy
from reconciler.spec.cron import compile_cron
from reconciler.spec.model import (
    CronFieldMap,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    JobSpec,
)

INTERVAL_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
# A cron field map's values, every field in the model's order.
_cron_fields = attrgetter(*CronFieldMap.model_fields)


def build_trigger(
    spec: JobSpec, *, with_jitter: bool = True, memory: TriggerMemory | None = None
) -> BaseTrigger:
    """The trigger APScheduler runs for `spec`. Raises ValueError for a schedule that the
    spec models accepted but APScheduler does not (should not happen: the models check).
    Built afresh unless the caller's `memory` remembers one."""
    if memory is not None:
        return memory.trigger(spec, with_jitter=with_jitter)
    return _build(spec, with_jitter=with_jitter)


def _dump_schedule(schedule: CronSchedule | IntervalSchedule | DateSchedule) -> str:
    return schedule.model_dump_json()


MEMORY_LIMIT = 50_000


class TriggerMemory:
    """Triggers, their fingerprints and fire times, remembered for one owner (kopf's
    inventory: an explicit memory, no module global). A long-running process keeps one
    (the engine's CoreMemory.triggers, the daemon's gauges); a one-shot process passes
    none and computes directly. Every value is determined by its key, so a memory only
    saves work; each table is bounded (cleared when full: a rebuild is only a cost).

    Triggers are keyed by the schedule's own fields: building a CronTrigger parses every
    field, and a pass over 10,000 jobs needs each trigger several times. Triggers are
    never mutated once built (APScheduler only reads them), so sharing one is safe."""

    def __init__(self, *, limit: int = MEMORY_LIMIT) -> None:
        self._limit = limit
        # The schedule as JSON, per (immutable) schedule object: several lookups per job
        # and pass need it, and dumping it costs more than the lookup it keys.
        self._schedule_text = IdentityMemo(_dump_schedule, limit=limit)
        self._triggers: dict[tuple[object, ...], BaseTrigger] = {}
        # (trigger, fingerprint) per timing key (with jitter): the trigger that `_triggers`
        # held when it was first asked for (an equal one, if that was cleared since).
        self._described: dict[tuple[object, ...], tuple[BaseTrigger, str]] = {}
        self._fires: dict[tuple[object, ...], tuple[datetime, ...]] = {}
        self._open_ends: dict[object, bool] = {}  # has_open_end per cron (see open_end)
        # describe_trigger per trigger object: the triggers built here are shared.
        self.fingerprint: IdentityMemo[BaseTrigger, str] = IdentityMemo(
            describe_trigger, limit=limit
        )

    def trigger(self, spec: JobSpec, *, with_jitter: bool = True) -> BaseTrigger:
        """`build_trigger(spec)`, remembered."""
        key = self._timing_key(spec.__dict__, with_jitter)
        trigger = self._triggers.get(key)
        if trigger is None:
            trigger = self._remember(key, _build(spec, with_jitter=with_jitter))
        return trigger

    def _remember(self, key: tuple[object, ...], trigger: BaseTrigger) -> BaseTrigger:
        if len(self._triggers) >= self._limit:
            self._triggers.clear()
        self._triggers[key] = trigger
        return trigger

    def trigger_and_fingerprint(
        self, spec: JobSpec, fields: Mapping[str, Any] | None = None
    ) -> tuple[BaseTrigger, str]:
        """`(trigger(spec), fingerprint(trigger(spec)))` in one look-up of the spec's
        timing: what a scheduler row needs of every job a plan writes (a cold plan of
        100,000 jobs on ~900 schedules looked each up twice). `fields`: the spec's
        `__dict__`, if the caller read it already."""
        key = self._timing_key(spec.__dict__ if fields is None else fields, True)
        known = self._described.get(key)
        if known is None:
            trigger = self._triggers.get(key)
            if trigger is None:  # built here: its key known, no fingerprint remembered
                trigger = self._remember(key, _build(spec, with_jitter=True))
                fingerprint = describe_trigger(trigger)
            else:
                fingerprint = self.fingerprint(trigger)
            if len(self._described) >= self._limit:
                self._described.clear()
            known = self._described[key] = (trigger, fingerprint)
        return known

    def open_end(self, spec: JobSpec) -> bool:
        """`has_open_end(spec)`, a cron's answer remembered by its text, or its map's
        values in the fields' order (all compile_cron reads of it): asked of every
        declared job, a compiled cron cost 4,000-18,000 instructions a job, the look-up
        ~1,500."""
        fields = spec.__dict__  # the model's field values, read quicker (core.fires)
        if fields["end"] is not None:
            return False
        schedule = fields["schedule"]
        if type(schedule) is not CronSchedule:
            return has_open_end(spec)  # no cron to compile
        cron = schedule.__dict__["cron"]
        key = cron if type(cron) is str else tuple(cron.__dict__.values())
        known = self._open_ends.get(key)
        if known is None:
            if len(self._open_ends) >= self._limit:
                self._open_ends.clear()
            known = self._open_ends[key] = has_open_end(spec)
        return known

    def next_fire_times(
        self, spec: JobSpec, *, after: datetime, count: int
    ) -> tuple[datetime, ...]:
        """`next_fire_times(...)`, remembered."""
        key = (self._timing_key(spec.__dict__, False), after, count)
        times = self._fires.get(key)
        if times is None:
            times = _compute_fire_times(self.trigger(spec, with_jitter=False), after, count)
            self._remember_fires(key, times)
        return times

    def first_fire_after(self, spec: JobSpec, *, now: datetime) -> datetime | None:
        """`first_fire_after(...)`, remembered (never with jitter: that is random)."""
        if spec.jitter_seconds:
            return first_fire_of(self.trigger(spec), after=now)
        key = (self._timing_key(spec.__dict__, False), now, 0)
        known = self._fires.get(key)
        if known is None:
            first = first_fire_of(self.trigger(spec), after=now)
            known = (first,) if first else ()
            self._remember_fires(key, known)
        return known[0] if known else None

    def _remember_fires(self, key: tuple[object, ...], times: tuple[datetime, ...]) -> None:
        if len(self._fires) >= self._limit:
            self._fires.clear()
        self._fires[key] = times

    def _timing_key(self, fields: Mapping[str, Any], with_jitter: bool) -> tuple[object, ...]:
        """What a trigger is built from, of the spec whose `__dict__` (its field values,
        read quicker: core.fires) is `fields`."""
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

    def _schedule_key(self, schedule: CronSchedule | IntervalSchedule | DateSchedule) -> object:
        """What `_build` reads of the schedule, as a tuple (never equal to the JSON text
        keying any other schedule): its cron text, its cron field map's values (what
        `cron_source` passes on; its JSON text cost ~20 us a job), its interval's length
        in seconds, or its date with the offset that the JSON text spells (equal dates in
        two offsets are two keys, as they were two texts). Dumping every job's schedule
        as JSON was most of a cold plan's trigger look-ups: 100,000 schedule objects,
        ~9 % distinct."""
        if type(schedule) is CronSchedule:
            cron = schedule.__dict__["cron"]
            if type(cron) is str:
                return ("cron", cron)
            if type(cron) is CronFieldMap:  # its fields' values (texts, ints, None), in order
                return ("cron-map", _cron_fields(cron))
        if type(schedule) is IntervalSchedule:
            return ("interval", schedule.interval.total_seconds())
        if type(schedule) is DateSchedule:
            return ("at", schedule.at, schedule.at.utcoffset())
        return self._schedule_text(schedule)


def _build(spec: JobSpec, *, with_jitter: bool) -> BaseTrigger:
    # The fields read from the model's __dict__ (see core.fires): a trigger is built
    # for each distinct schedule, ~1,700 of a cold plan of 100,000 jobs.
    fields = spec.__dict__
    timezone, schedule = fields["timezone"], fields["schedule"]
    zone = ZoneInfo(timezone)
    start = spec.zoned(fields["start"]) if fields["start"] else None
    end = spec.zoned(fields["end"]) if fields["end"] else None
    jitter = fields["jitter_seconds"] or None if with_jitter else None
    if isinstance(schedule, CronSchedule):
        return WallClockCronTrigger(
            cron=cron_source(schedule),
            timezone=timezone,
            dst=None if fields["dst"] is None else dst_policy(spec),
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


def cron_source(schedule: CronSchedule) -> str | dict[str, str | int]:
    return schedule.cron if isinstance(schedule.cron, str) else schedule.cron.as_mapping()


def dst_policy(spec: JobSpec) -> DstPolicy | None:
    """The job's explicit DST policy (its defaults filled in), None when it has none."""
    if spec.dst is None or not isinstance(spec.schedule, CronSchedule):
        return None
    pattern = compile_cron(cron_source(spec.schedule))
    return resolve_policy(pattern, gap=spec.dst.gap, repeat=spec.dst.repeat)


def describe_trigger(trigger: object) -> str:
    """A text equal for two triggers exactly when they fire at the same times: the
    repr, which names every field that matters."""
    return repr(trigger)


def has_open_end(spec: JobSpec) -> bool:
    """True when the schedule fires for ever (no end, no year limit, not a one-off), so
    a future fire exists without computing one: the validator refused crons that never
    fire. Saves a fire-time computation per job per pass."""
    fields = spec.__dict__  # the model's field values, read quicker (core.fires)
    if fields["end"] is not None:
        return False
    schedule = fields["schedule"]
    # The schedule's exact class first: isinstance with a model class that the object is
    # not an instance of is pydantic's ABCMeta check (~2,500 instructions; a third of
    # a cold plan's desired state went here). Subclasses (none is made) as before.
    kind = type(schedule)
    if kind is IntervalSchedule:
        return True
    if kind is DateSchedule:
        return False
    if kind is not CronSchedule:
        if isinstance(schedule, IntervalSchedule):
            return True
        if not isinstance(schedule, CronSchedule):
            return False
    cron = schedule.__dict__["cron"]
    return compile_cron(cron if isinstance(cron, str) else cron.as_mapping()).years is None


def next_fire_times(
    spec: JobSpec,
    *,
    after: datetime,
    count: int = 3,
    memory: TriggerMemory | None = None,
) -> tuple[datetime, ...]:
    """The next `count` fire times strictly after `after` (without jitter: a preview)."""
    if memory is not None:
        return memory.next_fire_times(spec, after=after, count=count)
    return _compute_fire_times(_build(spec, with_jitter=False), after, count)


def _compute_fire_times(trigger: BaseTrigger, after: datetime, count: int) -> tuple[datetime, ...]:
    if isinstance(trigger, WallClockCronTrigger):  # the engine, with no aware arithmetic
        return tuple(fire.at for fire in trigger.schedule.fires(after, count))
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


def upcoming_fires(
    spec: JobSpec, *, after: datetime, count: int, memory: TriggerMemory | None = None
) -> list[Fire]:
    """The next `count` fires strictly after `after`, with how DST placed each (for
    `reconcile next` and the API). Computed by the same trigger the daemon runs."""
    trigger = build_trigger(spec, with_jitter=False, memory=memory)
    if isinstance(trigger, WallClockCronTrigger):
        return trigger.schedule.fires(after, count)
    return [
        Fire(at=at, wall=at.replace(tzinfo=None), placement=Placement.NORMAL)
        for at in next_fire_times(spec, after=after, count=count, memory=memory)
    ]


def first_fire_after(
    spec: JobSpec, *, now: datetime, memory: TriggerMemory | None = None
) -> datetime | None:
    """When a newly added or resumed job fires first: the first slot after `now`, never
    `now` itself (a schedule change must not cause an immediate extra run). None when the
    schedule has no future slot (a past one-off date, an end in the past)."""
    if memory is not None:
        return memory.first_fire_after(spec, now=now)
    return first_fire_of(_build(spec, with_jitter=True), after=now)


def first_fire_of(trigger: BaseTrigger, *, after: datetime) -> datetime | None:
    """The trigger's first fire strictly after `after`, whatever `after` is (a slot, or
    the moment a job was applied): computed from the schedule (`previous` None), never
    as "previous + interval", which is only right when `after` is itself a slot. None
    when the schedule has no fire after it (a one-off date already past, an end)."""
    upcoming = trigger.get_next_fire_time(None, after + _EPSILON)
    if upcoming is None or upcoming <= after:
        return None
    return upcoming


_EPSILON = timedelta(microseconds=1)
