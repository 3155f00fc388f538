"""The daemon's per-job gauges: jobs by status, each job's next fire and nominal interval.

Refreshed after every reconcile pass from the database (one joined read). A job's series
are created (track_job) when it first appears or its spec changes, and dropped
(forget_job) when it leaves the inventory, so no alert fires for a removed job.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler import metrics
from reconciler.core.triggers import next_fire_times
from reconciler.spec.model import IntervalSchedule, JobSpec
from reconciler.store.inventory import EssenceCache
from reconciler.store.tables import JOB_STATUSES, apscheduler_jobs, scheduled_jobs


class JobGauges:
    def __init__(self) -> None:
        self._tracked: dict[str, str] = {}  # job name -> spec hash its series were made for

    def refresh(self, engine: Engine, essences: EssenceCache) -> None:
        jobs, aps = scheduled_jobs, apscheduler_jobs
        query = sa.select(jobs.c.name, jobs.c.status, jobs.c.spec_hash, aps.c.next_run_time)
        query = query.select_from(jobs.outerjoin(aps, aps.c.id == jobs.c.name))
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        by_status = Counter(row.status for row in rows)
        for status in JOB_STATUSES:
            metrics.MANAGED_JOBS.labels(status=status).set(by_status.get(status, 0))
        now = datetime.now(UTC)
        for row in rows:
            next_fire = row.next_run_time if row.status == "active" else None
            if self._tracked.get(row.name) != row.spec_hash:
                metrics.track_job(
                    row.name,
                    interval_seconds=_interval(essences, row.spec_hash, now),
                    next_fire=next_fire,
                )
                self._tracked[row.name] = row.spec_hash
            elif next_fire is not None:
                metrics.NEXT_FIRE.labels(row.name).set(next_fire)
            else:
                metrics.NEXT_FIRE.remove(row.name)  # absent: a no-op
        for gone in set(self._tracked) - {row.name for row in rows}:
            metrics.forget_job(gone)
            del self._tracked[gone]


def _interval(essences: EssenceCache, spec_hash: str, now: datetime) -> float | None:
    """The nominal seconds between two fires: an interval's length, or the gap between a
    cron's next two fires; None for a one-off or an unknown spec."""
    essence = essences.get(spec_hash)
    if not essence:
        return None
    spec = JobSpec.model_validate(dict(essence), strict=False)
    if isinstance(spec.schedule, IntervalSchedule):
        return float(spec.schedule.interval.total_seconds())
    upcoming = next_fire_times(spec, after=now, count=2)
    if len(upcoming) < 2:
        return None
    return (upcoming[1] - upcoming[0]).total_seconds()
