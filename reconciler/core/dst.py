"""Wall-clock cron across daylight-saving transitions: once per wall time, never twice.

APScheduler 3's CronTrigger matches the wall clock of its time zone, so on the autumn
transition, when an hour repeats (Europe/Berlin, 2026-10-25: 02:00-02:59 CEST, then
02:00-02:59 again as CET), a cron such as `30 2 * * *` fires TWICE (upstream #606,
#1021; Kubernetes #121594). `WallClockCronTrigger` applies vixie-cron's rule instead:

- AUTUMN (a wall time repeats): a cron whose HOUR field is not `*` (`30 2 * * *`,
  `0 */2 * * *`, `*/15 2 * * *`) names wall times; it fires at the FIRST occurrence of a
  repeated wall time only, and skips the second (fold=1). A cron whose hour field is `*`
  (`*/15 * * * *`, `0 * * * *`, `*/30 * * * * *`) keeps firing through the repeated hour,
  because real time passes: `*/15 * * * *` fires 8 times between 02:00 CEST and 02:45 CET.
  The second occurrence is kept when the first could not have been a fire of this
  trigger: before its `start_date`, or before `now` when the trigger is started fresh
  (no previous fire: a job added or resumed during the repeated hour).
- SPRING (a wall time does not exist: 02:00-02:59 on 2026-03-29 is skipped): unchanged
  from APScheduler. A fixed-hour cron of the skipped hour fires ONCE, shifted by the gap
  (`30 2 * * *` at 03:30 CEST, the instant 02:30 "would have been"); a wildcard-hour
  cron simply has no slots in the missing hour (`*/15 * * * *`: 01:45 CET, then 03:00
  CEST).
- Zones without transitions (UTC, the default) behave exactly like CronTrigger.

Contract for the job store: this class is pickled BY NAME into `apscheduler_jobs`
(`reconciler.core.dst:WallClockCronTrigger`), and APScheduler 3 deletes rows it cannot
unpickle: this module and this name never move. Its pickled state is CronTrigger's own
(nothing is added). Its repr is CronTrigger's with this class name (the fingerprint the
drift check compares): stable for equal specs, and different from a plain CronTrigger's,
so rows written before this class existed are repaired once into it.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

_HOUR = CronTrigger.FIELD_NAMES.index("hour")
_MAX_SKIPS = 4  # a pathological zone cannot loop us: one skip per transition is the norm


class WallClockCronTrigger(CronTrigger):
    """CronTrigger firing once per wall time across DST (see the module doc).

    Same constructor, fields, pickled state and `from_crontab` as CronTrigger.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        plain = self._without_jitter()
        moment = plain.get_next_fire_time(previous_fire_time, now)
        for _ in range(_MAX_SKIPS):
            if moment is None or not self._skips(moment, fresh=previous_fire_time is None, now=now):
                break
            moment = plain.get_next_fire_time(moment, moment)
        if moment is None:
            return None
        # Read on the zone's clock (APScheduler hands back the spring gap as 02:30+01:00).
        moment = moment.astimezone(UTC).astimezone(self.timezone)
        moment = self._apply_jitter(moment, self.jitter, now)
        return min(moment, self.end_date) if self.end_date else moment

    def hour_is_wildcard(self) -> bool:
        """True for an hour field of `*`: the cron follows real time, not wall times."""
        return str(self.fields[_HOUR]) == "*"

    def _skips(self, moment: datetime, *, fresh: bool, now: datetime) -> bool:
        """True when `moment` is the second occurrence of a repeated wall time whose first
        occurrence this trigger fired (or would have fired) already."""
        if self.hour_is_wildcard():
            return False
        first = earlier_occurrence(moment, self.timezone)
        if first is None:
            return False
        # In UTC: two datetimes of one zone compare by wall time, ignoring fold (PEP 495).
        if self.start_date is not None and first < self.start_date.astimezone(UTC):
            return False
        return not (fresh and first < now.astimezone(UTC))

    def _without_jitter(self) -> CronTrigger:
        # Skips are decided on the schedule's own slots; jitter is added afterwards.
        # Built lazily and never pickled (CronTrigger.__getstate__ lists its fields).
        plain: CronTrigger | None = self.__dict__.get("_plain")
        if plain is None:
            state: dict[str, Any] = dict(CronTrigger.__getstate__(self))
            state["jitter"] = None
            plain = CronTrigger.__new__(CronTrigger)
            plain.__setstate__(state)
            self.__dict__["_plain"] = plain
        return plain


def earlier_occurrence(moment: datetime, zone: tzinfo) -> datetime | None:
    """If `moment` is the SECOND occurrence of its wall time in `zone` (the hour repeated
    when the clocks go back), the first one, in UTC; else None (also for a wall time that does
    not exist, the spring gap, which has no occurrence at all)."""
    wall = moment.astimezone(zone).replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None  # not ambiguous
    if _wall_of(first, zone) != wall or _wall_of(second, zone) != wall:
        return None  # the gap: neither reading exists
    if moment.astimezone(UTC) != second.astimezone(UTC):
        return None  # this IS the first occurrence
    return first.astimezone(UTC)


def _wall_of(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
