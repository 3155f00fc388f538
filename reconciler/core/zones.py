"""A time zone as a list of UTC offset changes, so that schedules never do arithmetic on
aware datetimes.

Python's aware arithmetic is wall-clock arithmetic that keeps `fold` (adding 1 µs to a
second-occurrence time lands back in the first occurrence) and zoneinfo does not list
its transitions. `ZoneClock` finds them once per zone and year by sampling the offset
every 6 hours and bisecting each change to the second; between two transitions the
zone is a fixed offset, and everything else is naive UTC arithmetic.

Limits, stated: two transitions less than 6 hours apart would be seen as none (tzdata
has none such in this century); transitions are whole seconds (all of tzdata's are).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_SAMPLE = timedelta(hours=6)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of UTC time [start, end) during which the zone's offset is `offset`;
    `before` is the offset just before `start`, `after` the one from `end` on. Times are
    naive UTC. A stretch with no transition at an end has before/after == offset there."""

    start: datetime
    end: datetime
    before: timedelta
    offset: timedelta
    after: timedelta


class ZoneClock:
    """One zone's offsets over time. Holds a per-year memo of transitions: create one per
    zone and share it (zones are few; `zone_clock` does)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.zone = ZoneInfo(name)
        self._years: dict[int, tuple[tuple[datetime, timedelta, timedelta], ...]] = {}

    def offset_at(self, instant: datetime) -> timedelta:
        """The UTC offset at naive UTC `instant`."""
        offset = self.zone.utcoffset(self.zone.fromutc(instant.replace(tzinfo=self.zone)))
        assert offset is not None
        return offset

    def to_zone(self, instant: datetime) -> datetime:
        """Naive UTC `instant` as an aware datetime on this zone's clock (fold set)."""
        return instant.replace(tzinfo=UTC).astimezone(self.zone)

    def segment(self, instant: datetime) -> Segment:
        """The stretch of constant offset holding naive UTC `instant`."""
        year = instant.year
        around = [t for y in (year - 1, year, year + 1) for t in self._transitions(y)]
        index = bisect.bisect_right(around, instant, key=lambda t: t[0])
        if index:
            start, before, offset = around[index - 1]
        else:
            start = datetime(max(year - 1, 1), 1, 1)
            before = offset = self.offset_at(start)
        if index < len(around):
            end, _, after = around[index]
        else:
            end = datetime(min(year + 2, 9999), 1, 1)
            after = offset
        return Segment(start=start, end=end, before=before, offset=offset, after=after)

    def _transitions(self, year: int) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
        """(instant, offset before, offset after) of every change in `year`, naive UTC."""
        known = self._years.get(year)
        if known is None:
            known = self._years[year] = tuple(self._scan(year))
        return known

    def _scan(self, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
        if not 1 < year < 9999:
            return []
        found = []
        moment = datetime(year, 1, 1)
        end = datetime(year + 1, 1, 1)
        offset = self.offset_at(moment)
        while moment < end:
            later = min(moment + _SAMPLE, end)
            later_offset = self.offset_at(later)
            if later_offset != offset:
                found.append(self._bisect(moment, later, offset))
                offset = later_offset
            moment = later
        return found

    def _bisect(
        self, low: datetime, high: datetime, before: timedelta
    ) -> tuple[datetime, timedelta, timedelta]:
        """The first second in (low, high] whose offset differs from `before`."""
        while high - low > _SECOND:
            middle = low + (high - low) / 2
            middle = middle.replace(microsecond=0)
            if self.offset_at(middle) == before:
                low = middle
            else:
                high = middle
        return high, before, self.offset_at(high)


# Process-wide memo (docs/architecture.md): a trigger APScheduler unpickles rebuilds its
# schedule here, where no owner can pass one in; bounded by the zone database (an unknown
# name raises before it is stored), and a zone's transitions are the same for everyone.
_CLOCKS: dict[str, ZoneClock] = {}


def zone_clock(name: str) -> ZoneClock:
    """The shared ZoneClock of `name` (a zone's transitions are the same for everyone).
    Raises ZoneInfoNotFoundError (a KeyError) or ValueError for unknown names."""
    clock = _CLOCKS.get(name)
    if clock is None:
        clock = _CLOCKS[name] = ZoneClock(name)
    return clock
