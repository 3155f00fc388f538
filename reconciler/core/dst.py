"""The trigger the daemon's APScheduler calls for cron jobs: a thin adapter over the
schedule engine (core.schedule), so the daemon fires exactly what the preview lists.

APScheduler 3's own CronTrigger is not used for any fire time: it skips the day after a
spring-forward (`0 0 * * *` in Berlin: 2027-03-28, then 03-30; upstream #606, #529) and
fires twice in an autumn repeat (#1021).

Contract for the job store: this class is pickled BY NAME into `apscheduler_jobs`
(`reconciler.core.dst:WallClockCronTrigger`), and APScheduler 3 deletes rows it cannot
unpickle: this module and this name never move. Its pickled state is small and
versioned: {"version": 3, "cron", "timezone", "dst", "start", "end", "jitter"}.
Rows written by older builds hold version 2, CronTrigger's own state (this class was
a CronTrigger subclass): they still unpickle and fire by the engine (their fields read
as a field map, APScheduler's meaning), and their repr differs from any new trigger's,
so the reconciler's drift check rewrites each of them once. None is ever deleted.

The repr is the fingerprint the drift check compares: equal for equal schedules, and it
names every field that changes a fire time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from reconciler.core.schedule import CronSchedule, DstPolicy, Fire, Gap, Repeat
from reconciler.spec.cron import compile_cron

_STATE_VERSION = 3


class WallClockCronTrigger(BaseTrigger):
    """A cron schedule (string or field map) in a zone with a DST policy.

    `get_next_fire_time(previous, now)`: with a previous fire, the first fire strictly
    after it (APScheduler then counts the missed ones); without, the first at or after
    `now`. Jitter, if any, is added after the slot is chosen (APScheduler's rule)."""

    __slots__ = ("_last", "_schedule", "cron", "dst", "end", "jitter", "start", "timezone")

    def __init__(
        self,
        *,
        cron: str | Mapping[str, str | int],
        timezone: str,
        dst: DstPolicy | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        jitter: int | None = None,
    ) -> None:
        self.cron = cron if isinstance(cron, str) else dict(sorted(cron.items()))
        self.timezone = timezone
        self.dst = dst
        self.start = start
        self.end = end
        self.jitter = jitter or None
        self._schedule = self._make_schedule()
        self._last: tuple[datetime, bool, Fire | None] | None = None

    def _make_schedule(self) -> CronSchedule:
        return CronSchedule(
            compile_cron(self.cron),
            zone=self.timezone,
            policy=self.dst,
            start=self.start,
            end=self.end,
        )

    @property
    def schedule(self) -> CronSchedule:
        return self._schedule

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            fire = self._next_fire(previous_fire_time, inclusive=False)
        else:
            fire = self._next_fire(now, inclusive=True)
        if fire is None:
            return None
        moment = fire.at
        if self.jitter:
            moment = self._apply_jitter(moment, self.jitter, now)
        return moment

    def _next_fire(self, after: datetime, *, inclusive: bool) -> Fire | None:
        # The daemon's store shares one trigger among the jobs of equal schedules
        # (store.job_state), and a burst of them asks for the same answer in a row (10,000
        # jobs `0 * * * *` at :00): the last answer is kept (one tuple, replaced whole).
        # Keyed by the instant in UTC: two aware times of ONE zone compare by wall clock,
        # fold ignored, and the two 02:30 of an autumn night would be taken for one.
        instant = after.astimezone(UTC) if after.tzinfo is not None else after
        last = self._last
        if last is not None and last[0] == instant and last[1] == inclusive:
            return last[2]
        fire = self._schedule.next_fire(after, inclusive=inclusive)
        self._last = (instant, inclusive, fire)
        return fire

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "cron": self.cron,
            "timezone": self.timezone,
            "dst": None if self.dst is None else (self.dst.gap.value, self.dst.repeat.value),
            "start": self.start,
            "end": self.end,
            "jitter": self.jitter,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 0) < _STATE_VERSION:
            state = _from_cron_trigger_state(state)
        dst = state["dst"]
        self.cron = state["cron"]
        self.timezone = state["timezone"]
        self.dst = None if dst is None else DstPolicy(Gap(dst[0]), Repeat(dst[1]))
        self.start = state["start"]
        self.end = state["end"]
        self.jitter = state["jitter"]
        self._schedule = self._make_schedule()
        self._last = None

    def __repr__(self) -> str:
        if self.dst is None and self.start is None and self.end is None and not self.jitter:
            # Most crons: the text below with no part but these two (one per trigger a
            # plan builds: ~1,700 of a cold plan of 100,000 jobs, ~900 of 2,000).
            return f"<{type(self).__name__} (cron={self.cron!r}, timezone={self.timezone!r})>"
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


def _from_cron_trigger_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """An older build's row: APScheduler's CronTrigger state (version 2), its fields
    read back as the field map they are (APScheduler's own meaning)."""
    fields = {field.name: str(field) for field in state["fields"]}
    return {
        "cron": fields,
        "timezone": str(state["timezone"]),
        "dst": None,
        "start": state.get("start_date"),
        "end": state.get("end_date"),
        "jitter": state.get("jitter"),
    }
