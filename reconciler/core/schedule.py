"""The schedule engine: every cron fire time of the product is computed here.

The plan preview, the API's next fires, `reconcile next`, the never-fires check and the
trigger the daemon's APScheduler calls (core.dst) all ask `CronSchedule`. Two steps:

1. MATCH on the naive wall clock of the job's zone: `next_wall` finds the first wall
   time at or after a given one that the pattern names (spec.cron). No time zone here.
2. PLACE each wall time in the zone by the job's DST policy. The zone is a sequence of
   stretches of constant UTC offset (core.zones); inside one, wall = UTC + offset. A
   wall time that falls in a spring-forward GAP has no instant; one in an autumn REPEAT
   has two. `DstPolicy` says what then:
   - gap: `shift` (runs at the instant it "would have been": 02:30 -> 03:30 CEST),
     `next` (runs once, at the jump itself, 03:00: all gap slots of a day collapse into
     one run) or `skip` (does not run);
   - repeat: `first` (once, at the first occurrence), `last` (once, at the second), or
     `both`.
   Defaults are Vixie cron's: a FIXED-TIME cron (neither minute nor hour starts with
   `*`) gets {gap: next, repeat: first}; a cron whose minute or hour starts with `*`
   follows real time: {gap: skip, repeat: both}. One refinement: with `repeat: first`,
   a wall time whose first occurrence is before the job's `start` and whose second is
   not runs at the second (the first could never have run).

All arithmetic is on naive datetimes (UTC instants or wall times); aware datetimes are
only read at the entry and made at the exit. Fires are strictly increasing instants.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from reconciler.core.zones import Segment, ZoneClock, zone_clock
from reconciler.spec.cron import CronPattern

_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)  # more than any UTC offset (tzdata: -12h to +14h)
_HORIZON_YEARS = 401  # the Gregorian calendar repeats every 400 years


class Gap(StrEnum):
    SHIFT = "shift"
    NEXT = "next"
    SKIP = "skip"


class Repeat(StrEnum):
    FIRST = "first"
    LAST = "last"
    BOTH = "both"


class Placement(StrEnum):
    """How a fire's wall time was placed; everything but NORMAL is DST-affected."""

    NORMAL = "normal"
    GAP_SHIFT = "gap-shift"  # wall time in the gap, run at wall + gap length
    GAP_NEXT = "gap-next"  # wall time(s) in the gap, run once at the jump
    REPEAT_FIRST = "repeat-first"  # first occurrence of a repeated wall time
    REPEAT_SECOND = "repeat-second"  # second occurrence of a repeated wall time


@dataclass(frozen=True, slots=True)
class DstPolicy:
    gap: Gap
    repeat: Repeat


FIXED_TIME_DEFAULT = DstPolicy(Gap.NEXT, Repeat.FIRST)
REAL_TIME_DEFAULT = DstPolicy(Gap.SKIP, Repeat.BOTH)


def default_policy(pattern: CronPattern) -> DstPolicy:
    return REAL_TIME_DEFAULT if pattern.real_time else FIXED_TIME_DEFAULT


def resolve_policy(
    pattern: CronPattern, *, gap: str | None = None, repeat: str | None = None
) -> DstPolicy:
    """The policy of a job: what it says, and the default for what it does not."""
    default = default_policy(pattern)
    return DstPolicy(Gap(gap) if gap else default.gap, Repeat(repeat) if repeat else default.repeat)


@dataclass(frozen=True, slots=True)
class Fire:
    """One fire: `at` aware on the zone's clock, `wall` the naive wall time the pattern
    named (differs from `at`'s for gap placements), how it was placed."""

    at: datetime
    wall: datetime
    placement: Placement


class CronSchedule:
    """A pattern in a zone with a DST policy, bounded by optional aware start/end."""

    def __init__(
        self,
        pattern: CronPattern,
        *,
        zone: str,
        policy: DstPolicy | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        self.pattern = pattern
        self.clock: ZoneClock = zone_clock(zone)
        self.policy = policy or default_policy(pattern)
        self.start = _naive_utc(start) if start else None
        self.end = _naive_utc(end) if end else None

    def next_fire(self, after: datetime, *, inclusive: bool = False) -> Fire | None:
        """The first fire strictly after aware `after` (at or after it if `inclusive`),
        never before `start` nor after `end`; None if there is none."""
        cursor = _naive_utc(after)
        if not inclusive:
            cursor += timedelta(microseconds=1)
        if self.start is not None and cursor < self.start:
            cursor = self.start
        found = self._first_from(cursor)
        if found is None:
            return None
        instant, wall, placement = found
        if self.end is not None and instant > self.end:
            return None
        return Fire(self.clock.to_zone(instant), wall, placement)

    def fires(self, after: datetime, count: int) -> list[Fire]:
        """The next `count` fires strictly after `after`."""
        out: list[Fire] = []
        moment = after
        while len(out) < count:
            fire = self.next_fire(moment)
            if fire is None:
                break
            out.append(fire)
            moment = fire.at
        return out

    # ---- placement -------------------------------------------------------------------

    def _first_from(self, cursor: datetime) -> tuple[datetime, datetime, Placement] | None:
        """The first (instant, wall, placement) at or after naive UTC `cursor`."""
        horizon = min(cursor.year + _HORIZON_YEARS, 9999)
        if self.pattern.years is not None:
            horizon = min(horizon, max(self.pattern.years) + 1)
        # Jump over the years with no matching wall time, found on the naive clock alone:
        # a fire's instant and wall are less than a day apart (UTC offsets), so the fires
        # of walls up to `wall` lie before wall + 1 day and none of a later wall precedes
        # (next wall - 1 day). Without this a rare or impossible pattern (`0 0 30 2 *`
        # from an old row or `next --cron`, a Monday 29 February) walks every zone
        # segment of up to 401 years: seconds per call instead of milliseconds.
        wall_horizon = datetime(horizon, 1, 1)
        lower = _ceil_second(_day_before(cursor))
        while cursor.year < horizon:
            wall = next_wall(self.pattern, lower, wall_horizon)
            if wall is None:
                return None
            cursor = max(cursor, _day_before(wall))
            while cursor.year < horizon and cursor <= wall + _DAY:
                segment = self.clock.segment(cursor)
                found = _earliest(
                    self._gap_fire(segment, cursor), self._plain_fire(segment, cursor)
                )
                if found is not None:
                    return found
                cursor = segment.end
            lower = max(wall + _SECOND, _ceil_second(_day_before(cursor)))
        return None

    def _plain_fire(
        self, segment: Segment, cursor: datetime
    ) -> tuple[datetime, datetime, Placement] | None:
        """The first wall time of `segment` (wall = UTC + offset) at or after `cursor`
        that the policy keeps."""
        offset = segment.offset
        wall_end = segment.end + offset
        wall = _ceil_second(cursor + offset)
        repeat_end = segment.start + segment.before  # walls below it happened before too
        next_repeat = segment.end + segment.after  # walls from it happen again after end
        while True:
            found = next_wall(self.pattern, wall, wall_end)
            if found is None:
                return None
            wall = found
            placement = Placement.NORMAL
            if segment.before > offset and wall < repeat_end:
                placement = Placement.REPEAT_SECOND
                if not self._keeps_second(wall, segment):
                    wall = repeat_end
                    continue
            elif segment.after < offset and wall >= next_repeat:
                placement = Placement.REPEAT_FIRST
                if self.policy.repeat is Repeat.LAST:
                    return None  # every wall left in this segment repeats after it
            return wall - offset, wall, placement

    def _keeps_second(self, wall: datetime, segment: Segment) -> bool:
        if self.policy.repeat is not Repeat.FIRST:
            return True
        first = wall - segment.before
        return self.start is not None and first < self.start

    def _gap_fire(
        self, segment: Segment, cursor: datetime
    ) -> tuple[datetime, datetime, Placement] | None:
        """A fire placed from the spring-forward gap at `segment.start`, if any."""
        jump = segment.offset - segment.before
        if jump <= timedelta(0) or self.policy.gap is Gap.SKIP:
            return None
        gap_start = segment.start + segment.before
        gap_end = segment.start + segment.offset
        if self.policy.gap is Gap.NEXT:
            if cursor > segment.start:
                return None
            wall = next_wall(self.pattern, gap_start, gap_end)
            return None if wall is None else (segment.start, wall, Placement.GAP_NEXT)
        wall = next_wall(
            self.pattern, max(gap_start, _ceil_second(cursor + segment.before)), gap_end
        )
        if wall is None:
            return None
        return wall - segment.before, wall, Placement.GAP_SHIFT


def _earliest(
    *candidates: tuple[datetime, datetime, Placement] | None,
) -> tuple[datetime, datetime, Placement] | None:
    found = [c for c in candidates if c is not None]
    return min(found, key=lambda c: c[0]) if found else None


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a schedule needs aware datetimes")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _day_before(moment: datetime) -> datetime:
    return moment - _DAY if moment >= datetime.min + _DAY else datetime.min


def _ceil_second(moment: datetime) -> datetime:
    if moment.microsecond:
        return moment.replace(microsecond=0) + _SECOND
    return moment


# ---- matching on the naive clock -------------------------------------------------------


def next_wall(pattern: CronPattern, start: datetime, bound: datetime) -> datetime | None:
    """The first naive wall time in [start, bound) that `pattern` names, or None.
    `start` must be a whole second."""
    year, month = start.year, start.month
    while (year, month) <= (bound.year, bound.month):
        days = pattern.days_of(year, month)
        first_day = start.day if (year, month) == (start.year, start.month) else 1
        for day in days[bisect.bisect_left(days, first_day) :]:
            if (year, month, day) == (start.year, start.month, start.day):
                found = _time_at_or_after(pattern, start.hour, start.minute, start.second)
                if found is None:
                    continue
                moment = datetime(year, month, day, *found)
            else:
                moment = datetime(
                    year, month, day, pattern.hours[0], pattern.minutes[0], pattern.seconds[0]
                )
            return moment if moment < bound else None
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if pattern.years is not None and year not in pattern.years:
            later = [y for y in pattern.years if y >= year]
            if not later:
                return None
            if min(later) > year:
                year, month = min(later), 1
    return None


def _time_at_or_after(
    pattern: CronPattern, hour: int, minute: int, second: int
) -> tuple[int, int, int] | None:
    hours, minutes, seconds = pattern.hours, pattern.minutes, pattern.seconds
    for h in hours[bisect.bisect_left(hours, hour) :]:
        if h > hour:
            return h, minutes[0], seconds[0]
        for m in minutes[bisect.bisect_left(minutes, minute) :]:
            if m > minute:
                return h, m, seconds[0]
            index = bisect.bisect_left(seconds, second)
            if index < len(seconds):
                return h, m, seconds[index]
    return None
