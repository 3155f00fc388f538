"""Our pickled job states unpickle, with plain `pickle.loads` as APScheduler's store
does, into exactly the state dict APScheduler's own `Job.__getstate__` builds."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler

from reconciler.core.fires import FIRE_CALLABLE
from reconciler.core.state import scheduler_job
from reconciler.spec.model import JobSpec
from reconciler.store.scheduler_rows import job_state


class _Scheduler(BaseScheduler):
    def shutdown(self, wait: bool = True) -> None:  # pragma: no cover - never started
        pass

    def wakeup(self) -> None:  # pragma: no cover - never started
        pass


def apscheduler_state(job: object, next_run_time: datetime | None) -> dict[str, object]:
    """What APScheduler itself would store for the same job."""
    built = Job(
        _Scheduler(),
        id=job.id,
        func=FIRE_CALLABLE,
        trigger=job.trigger,
        executor="default",
        args=(),
        kwargs=dict(job.kwargs),
        name=job.id,
        misfire_grace_time=job.misfire_grace_time,
        coalesce=job.coalesce,
        max_instances=job.max_instances,
        next_run_time=next_run_time,
    )
    return built.__getstate__()


def test_state_unpickles_to_apschedulers_own_state() -> None:
    moment = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
    for schedule in ({"cron": "*/5 * * * *"}, {"interval": {"minutes": 7}}):
        spec = JobSpec.model_validate(
            {"name": "a", "task": "reconciler.tasks.example_task", "schedule": schedule}
        )
        job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
        for next_run_time in (moment, None):
            ours = pickle.loads(job_state(job, next_run_time))
            theirs = apscheduler_state(job, next_run_time)
            assert repr(ours.pop("trigger")) == repr(theirs.pop("trigger"))
            assert ours == theirs
            # The trigger is a real, working trigger again, not a shared object.
            again = pickle.loads(job_state(job, next_run_time))["trigger"]
            assert again is not job.trigger
            assert again.get_next_fire_time(None, moment) == job.trigger.get_next_fire_time(
                None, moment
            )
