"""The job store the leader's APScheduler runs on: APScheduler's own SQLAlchemyJobStore,
restricted to the rows WE own and forbidden to delete what it cannot read.

Two upstream behaviours would break our promises:
- `_get_jobs` DELETES every row whose callable cannot be imported (upstream #341);
- the scheduler fires every row of the table, including `apscheduler_jobs` rows that
  belong to someone else (we report foreign rows and must never touch them).
So every query here is limited to ids in `scheduled_jobs`, and a row that cannot be
restored is skipped (and logged once) instead of deleted: the reconciler repairs it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime

from reconciler.store.tables import scheduled_jobs

log = logging.getLogger(__name__)


class OwnedJobStore(SQLAlchemyJobStore):
    """`SQLAlchemyJobStore(engine=...)` seeing only our jobs, never deleting unread rows."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._unreadable: set[str] = set()

    def _owned(self) -> sa.ColumnElement[bool]:
        owned = self.jobs_t.c.id.in_(sa.select(scheduled_jobs.c.name))
        if self._unreadable:
            owned = sa.and_(owned, self.jobs_t.c.id.not_in(sorted(self._unreadable)))
        return owned

    def get_due_jobs(self, now: datetime) -> list[Job]:
        timestamp = datetime_to_utc_timestamp(now)
        return self._get_jobs(self.jobs_t.c.next_run_time <= timestamp)

    def get_next_run_time(self) -> datetime | None:
        query = (
            sa.select(self.jobs_t.c.next_run_time)
            .where(self.jobs_t.c.next_run_time.is_not(None))
            .where(self._owned())
            .order_by(self.jobs_t.c.next_run_time)
            .limit(1)
        )
        with self.engine.begin() as connection:
            return utc_timestamp_to_datetime(connection.execute(query).scalar())

    def get_all_jobs(self) -> list[Job]:
        jobs = self._get_jobs()
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def _get_jobs(self, *conditions: Any) -> list[Job]:
        query = (
            sa.select(self.jobs_t.c.id, self.jobs_t.c.job_state)
            .where(self._owned(), *conditions)
            .order_by(self.jobs_t.c.next_run_time)
        )
        jobs = []
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                try:
                    jobs.append(self._reconstitute_job(row.job_state))
                except Exception:  # skip, never delete (see module doc)
                    log.exception("job %r cannot be restored; skipped until repaired", row.id)
                    self._unreadable.add(row.id)
        return jobs

    def forget_unreadable(self) -> None:
        """After a reconcile pass (which repairs unreadable rows), look at them again."""
        self._unreadable.clear()
