"""The daemon's per-job gauges: jobs by status, each job's next fire and nominal interval,
and whether a past slot went absent (nothing ran or was recorded).

Exported by the leader only: refreshed after every reconcile pass and every 10 s from one
narrow read of every job (`reconciler.store.status.read_gauge_rows`: the same values
`reconcile get jobs` shows). The daemon's refresh gives way to a pending file event: the
read and the setting of the jobs' series are abandoned between two chunks (the refresh
after that pass completes them), so an edit never waits for 100,000 rows. A job's series are
created (track_job) when it first appears or its spec changes, and dropped (forget_job)
when it leaves the inventory, so no alert fires for a removed job, and all of them when
the daemon stops leading.

The refresh runs in the leader's process, beside the scheduler and the firing pipeline
(one GIL): its work is proportional to what changed, not to the jobs. A job whose row is
as last seen costs one comparison until its "absent" answer may flip; a value is written
only when it changes; the facts that depend only on a job's timing (its trigger, grace,
nominal interval, first slot after an instant) are worked out once per distinct timing,
shared by every job with that timing (a herd of 10,000 jobs on one cron: once). Measured
by bench/bench_gauges.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from reconciler import metrics
from reconciler.core.moments import as_utc
from reconciler.core.slots import slot_times
from reconciler.core.triggers import TriggerMemory, next_fire_times
from reconciler.core.vocabulary import JobStatus
from reconciler.spec.model import IntervalSchedule, JobSpec
from reconciler.store.inventory import EssenceCache
from reconciler.store.status import read_gauge_rows

# A slot counts as absent once it is this much older than the job's misfire grace: the
# fire, its publish and its ledger row have had time to land.
ABSENT_AFTER_GRACE = timedelta(seconds=60)
_FAR = timedelta(days=3660)
# The spec fields a job's slots, interval and grace depend on (and that the spec's
# validators read together): two jobs equal in these share every timing fact.
TIMING_FIELDS = ("schedule", "timezone", "dst", "start", "end", "jitter_seconds")
_GRACE_FIELD = "misfire_grace_seconds"
_MEMO_LIMIT = 50_000
# `stopping` asked every this many jobs while they are set: the first refresh of a term
# makes 100,000 jobs' series (15 s of CPU), a file event must not wait for it either.
_STOPPING_EVERY = 256


@dataclass(frozen=True, eq=False)
class _Timing:
    """A job's timing as a spec (the first job's of that timing: the others' timing
    fields are equal) and its grace before a slot counts as absent."""

    key: bytes
    spec: JobSpec
    grace: timedelta


class _Job:
    """What was exported for one job and what it was computed from."""

    __slots__ = ("absent", "first", "next_fire", "recheck_at", "row", "since", "timing")

    def __init__(self, row: tuple[Any, ...], timing: _Timing | None) -> None:
        self.row = row  # (status, spec_hash, updated_at, next_run_time, last_run_slot)
        self.timing = timing
        self.next_fire: float | None = None  # as exported
        self.absent: bool | None = None  # as exported (None: no series)
        self.since: datetime | None = None  # the instant `first` was computed after
        self.first: datetime | None = None  # the first slot after `since` (if known)
        # When the absent answer of an unchanged row may flip (None: never).
        self.recheck_at: datetime | None = None


_UNKNOWN = datetime.min.replace(tzinfo=UTC)  # `first` not computed (not needed yet)


class JobGauges:
    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._timings: dict[bytes, _Timing] = {}  # timing key -> its facts
        # (timing key, since) -> the first slot after `since`: a herd shares one answer.
        self._first_slots: dict[tuple[bytes, datetime], datetime | None] = {}

    def refresh(
        self,
        engine: Engine,
        essences: EssenceCache,
        triggers: TriggerMemory,
        *,
        now: datetime | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> bool:
        """Set every job's gauges. `triggers`: the engine's memory (core/memory.py);
        `now`: the clock (tests). `stopping`: asked while the rows are read and every
        _STOPPING_EVERY jobs while they are set (the daemon's: a file event is
        pending); when it says so the refresh is abandoned (False): each job's gauges
        are then either from this read or as the last refresh left them, and the next
        complete refresh sets them all."""
        with engine.connect() as connection:
            rows = read_gauge_rows(connection, stopping=stopping)
        if rows is None:
            return False
        by_status = Counter(row[1] for row in rows)
        for status in JobStatus:
            metrics.MANAGED_JOBS.labels(status=status).set(by_status.get(status, 0))
        now = now or datetime.now(UTC)
        intervals: dict[bytes, float | None] = {}  # per timing, at `now`
        jobs = self._jobs
        for index, found in enumerate(rows):
            if stopping is not None and index % _STOPPING_EVERY == 0 and index and stopping():
                # The jobs before this one are set from this read, the others as the
                # last refresh left them; none is dropped (the next refresh does it).
                return False
            name, row = found[0], found[1:]
            job = jobs.get(name)
            if _unchanged(job, row, now):
                continue  # nothing moved, and its absent answer cannot have flipped
            if job is None or job.row[1] != row[1] or _spec_arrived(job, essences):
                job = jobs[name] = self._track(name, row, essences, now, triggers, intervals)
            else:
                job.row = row
                self._set_next_fire(name, job)
            self._set_absent(name, job, now, triggers)
        for gone in set(jobs) - {row[0] for row in rows}:
            metrics.forget_job(gone)
            del jobs[gone]
        if len(self._first_slots) > _MEMO_LIMIT:
            self._first_slots.clear()
        return True

    def forget_all(self) -> None:
        """Drop every job's series: called when this daemon stops leading. A standby fires
        nothing and refreshes nothing, so a value it kept (an absent slot, a next fire long
        past) would be frozen, and `max` across the replicas would alert on it."""
        for name in self._jobs:
            metrics.forget_job(name)
        self._jobs.clear()

    def _track(
        self,
        name: str,
        row: tuple[Any, ...],
        essences: EssenceCache,
        now: datetime,
        triggers: TriggerMemory,
        intervals: dict[bytes, float | None],
    ) -> _Job:
        """(Re)make a job's series: it is new or its spec changed."""
        job = _Job(row, self._timing(essences.get(row[1])))
        job.next_fire = _next_fire(row)
        interval: float | None = None
        if job.timing is not None:
            key = job.timing.key
            if key not in intervals:
                intervals[key] = _interval(job.timing.spec, now, triggers)
            interval = intervals[key]
        metrics.track_job(name, interval_seconds=interval, next_fire=job.next_fire)
        # track_job makes a new absent series at 0 but keeps an existing one's value: a
        # job absent (1) under its old spec is 0 until the new spec says otherwise.
        metrics.SLOT_ABSENT.labels(name).set(0)
        job.absent = False
        return job

    def _timing(self, essence: Mapping[str, Any] | None) -> _Timing | None:
        if not essence:
            return None
        key = orjson.dumps(
            [essence.get(field) for field in (*TIMING_FIELDS, _GRACE_FIELD)],
            default=str,
        )
        timing = self._timings.get(key)
        if timing is None:
            spec = JobSpec.model_validate(dict(essence), strict=False)
            grace = timedelta(seconds=float(spec.misfire_grace_seconds)) + ABSENT_AFTER_GRACE
            if len(self._timings) >= _MEMO_LIMIT:
                self._timings.clear()
            timing = self._timings[key] = _Timing(key, spec, grace)
        return timing

    def _set_next_fire(self, name: str, job: _Job) -> None:
        next_fire = _next_fire(job.row)
        if next_fire == job.next_fire:
            return
        if next_fire is None:
            metrics.NEXT_FIRE.remove(name)
        else:
            metrics.NEXT_FIRE.labels(name).set(next_fire)
        job.next_fire = next_fire

    def _set_absent(self, name: str, job: _Job, now: datetime, triggers: TriggerMemory) -> None:
        absent = self._slot_absent(job, now, triggers)
        if absent == job.absent:
            return
        if absent is None:
            metrics.SLOT_ABSENT.remove(name)
        else:
            metrics.SLOT_ABSENT.labels(name).set(1 if absent else 0)
        job.absent = absent

    def _slot_absent(self, job: _Job, now: datetime, triggers: TriggerMemory) -> bool | None:
        """Whether the first slot after the newer of the job's newest ledger slot and its
        last inventory change is older than its grace; None for a paused or completed job,
        or one whose spec is unknown (no series). Sets `job.recheck_at`."""
        job.recheck_at = None
        status, _, updated_at, _, last_run_slot = job.row
        timing = job.timing
        if status != JobStatus.ACTIVE:
            return None
        if timing is None:  # its spec is not known yet (applied by another process)
            job.recheck_at = _UNKNOWN  # look again at the next refresh
            return None
        since = max(filter(None, (as_utc(last_run_slot), as_utc(updated_at))))
        if since != job.since:
            job.since, job.first = since, _UNKNOWN
        if job.first is _UNKNOWN:
            # Every slot after `since` is later than `since`: until `since` is older
            # than the grace, none can be absent, and the slot need not be computed.
            # (Right after a herd, every job is here.)
            if since + timing.grace >= now:
                job.recheck_at = since + timing.grace
                return False
            job.first = self._first_slot(timing, since, triggers)
        if job.first is None:
            return False
        if job.first + timing.grace < now:
            return True
        job.recheck_at = job.first + timing.grace
        return False

    def _first_slot(
        self, timing: _Timing, since: datetime, triggers: TriggerMemory
    ) -> datetime | None:
        key = (timing.key, since)
        if key not in self._first_slots:
            found, _ = slot_times(
                timing.spec, after=since, until=since + _FAR, limit=1, triggers=triggers
            )
            self._first_slots[key] = found[0] if found else None
        return self._first_slots[key]


def _unchanged(job: _Job | None, row: tuple[Any, ...], now: datetime) -> bool:
    if job is None or job.row != row:
        return False
    return job.recheck_at is None or now <= job.recheck_at


def _spec_arrived(job: _Job, essences: EssenceCache) -> bool:
    """A job tracked before its spec was known (a CLI apply seen before the daemon's own
    pass read the spec) whose spec is known now: its series are made again."""
    return job.timing is None and bool(essences.get(job.row[1]))


def _next_fire(row: tuple[Any, ...]) -> float | None:
    status, _, _, next_run_time, _ = row
    return next_run_time if status == JobStatus.ACTIVE else None


def _interval(spec: JobSpec, now: datetime, triggers: TriggerMemory) -> float | None:
    """The nominal seconds between two fires: an interval's length, or the gap between a
    cron's next two fires; None for a one-off."""
    if isinstance(spec.schedule, IntervalSchedule):
        return float(spec.schedule.interval.total_seconds())
    upcoming = next_fire_times(spec, after=now, count=2, memory=triggers)
    if len(upcoming) < 2:
        return None
    return (upcoming[1] - upcoming[0]).total_seconds()
