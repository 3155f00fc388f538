"""The daemon's per-job gauges: jobs by status, each job's next fire and nominal interval,
and whether a past slot went absent (nothing ran or was recorded).

Exported by the leader only: refreshed after every reconcile pass and every 10 s from the
read model's job rows (`reconciler.store.status`: one joined read, the same rows
`reconcile get jobs` shows). A job's series are created (track_job) when it first
appears or its spec changes, and dropped (forget_job) when it leaves the inventory, so
no alert fires for a removed job, and all of them when the daemon stops leading.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from reconciler import metrics
from reconciler.core.moments import as_utc
from reconciler.core.slots import slot_times
from reconciler.core.status import JobRow
from reconciler.core.triggers import TriggerMemory, next_fire_times
from reconciler.core.vocabulary import JobStatus
from reconciler.spec.model import IntervalSchedule, JobSpec
from reconciler.store.inventory import EssenceCache
from reconciler.store.status import read_job_rows

# A slot counts as absent once it is this much older than the job's misfire grace: the
# fire, its publish and its ledger row have had time to land.
ABSENT_AFTER_GRACE = timedelta(seconds=60)
_FAR = timedelta(days=3660)


class JobGauges:
    def __init__(self) -> None:
        self._tracked: dict[str, str] = {}  # job name -> spec hash its series were made for
        # job name -> (spec hash, since, first slot after since, its grace): recomputed only
        # when the job's newest ledger slot or its spec moves.
        self._first_slot: dict[str, tuple[str, datetime, datetime | None, timedelta]] = {}

    def refresh(self, engine: Engine, essences: EssenceCache, triggers: TriggerMemory) -> None:
        """Set every job's gauges. `triggers`: the engine's memory (core/memory.py)."""
        with engine.connect() as connection:
            rows = read_job_rows(connection)
        by_status = Counter(row.status for row in rows)
        for status in JobStatus:
            metrics.MANAGED_JOBS.labels(status=status).set(by_status.get(status, 0))
        now = datetime.now(UTC)
        for row in rows:
            self._refresh_job(row, essences, now, triggers)
        for gone in set(self._tracked) - {row.name for row in rows}:
            metrics.forget_job(gone)
            del self._tracked[gone]
            self._first_slot.pop(gone, None)

    def forget_all(self) -> None:
        """Drop every job's series: called when this daemon stops leading. A standby fires
        nothing and refreshes nothing, so a value it kept (an absent slot, a next fire long
        past) would be frozen, and `max` across the replicas would alert on it."""
        for name in self._tracked:
            metrics.forget_job(name)
        self._tracked.clear()
        self._first_slot.clear()

    def _refresh_job(
        self, row: JobRow, essences: EssenceCache, now: datetime, triggers: TriggerMemory
    ) -> None:
        spec_hash = row.spec_hash
        # The spec is parsed only when a series is (re)made or a first slot recomputed:
        # refreshing 100,000 unchanged jobs every 10 s must not validate 100,000 specs.
        parsed: list[JobSpec | None] = []

        def spec_of() -> JobSpec | None:
            if not parsed:
                parsed.append(_spec(essences, spec_hash))
            return parsed[0]

        next_fire = row.next_run_time if row.status == JobStatus.ACTIVE else None
        if self._tracked.get(row.name) != spec_hash:
            metrics.track_job(
                row.name, interval_seconds=_interval(spec_of(), now, triggers), next_fire=next_fire
            )
            self._tracked[row.name] = spec_hash
        elif next_fire is not None:
            metrics.NEXT_FIRE.labels(row.name).set(next_fire)
        else:
            metrics.NEXT_FIRE.remove(row.name)  # absent: a no-op
        absent = self._slot_absent(row, spec_of, spec_hash, now, triggers)
        if absent is None:
            metrics.SLOT_ABSENT.remove(row.name)
        else:
            metrics.SLOT_ABSENT.labels(row.name).set(1 if absent else 0)

    def _slot_absent(
        self,
        row: JobRow,
        spec_of: Callable[[], JobSpec | None],
        spec_hash: str,
        now: datetime,
        triggers: TriggerMemory,
    ) -> bool | None:
        """Whether the first slot after the newer of the job's newest ledger slot and its
        last inventory change is older than its grace; None for a paused or completed job,
        or one whose spec is unknown (no series)."""
        if row.status != JobStatus.ACTIVE:
            return None
        since = max(filter(None, (as_utc(row.last_run_slot), as_utc(row.updated_at))))
        known = self._first_slot.get(row.name)
        if known is None or known[:2] != (spec_hash, since):
            spec = spec_of()
            if spec is None:
                return None
            found, _ = slot_times(spec, after=since, until=since + _FAR, limit=1, triggers=triggers)
            grace = timedelta(seconds=float(spec.misfire_grace_seconds)) + ABSENT_AFTER_GRACE
            known = (spec_hash, since, found[0] if found else None, grace)
            self._first_slot[row.name] = known
        _, _, first, grace = known
        return first is not None and first < now - grace


def _spec(essences: EssenceCache, spec_hash: str) -> JobSpec | None:
    essence = essences.get(spec_hash)
    if not essence:
        return None
    return JobSpec.model_validate(dict(essence), strict=False)


def _interval(spec: JobSpec | None, now: datetime, triggers: TriggerMemory) -> float | None:
    """The nominal seconds between two fires: an interval's length, or the gap between a
    cron's next two fires; None for a one-off or an unknown spec."""
    if spec is None:
        return None
    if isinstance(spec.schedule, IntervalSchedule):
        return float(spec.schedule.interval.total_seconds())
    upcoming = next_fire_times(spec, after=now, count=2, memory=triggers)
    if len(upcoming) < 2:
        return None
    return (upcoming[1] - upcoming[0]).total_seconds()
