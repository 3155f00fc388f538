"""Our pickled job states unpickle, with plain `pickle.loads` as APScheduler's store
does, into exactly the state dict APScheduler's own `Job.__getstate__` builds."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler

from reconciler.core.fires import FIRE_CALLABLE
from reconciler.core.state import scheduler_job
from reconciler.spec.model import JobSpec
from reconciler.store.job_state import StateCodec, load_state, pickle_job, pickle_state


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
            ours = pickle.loads(pickle_job(job, next_run_time))
            theirs = apscheduler_state(job, next_run_time)
            assert repr(ours.pop("trigger")) == repr(theirs.pop("trigger"))
            assert ours == theirs
            # The trigger is a real, working trigger again, not a shared object.
            again = pickle.loads(pickle_job(job, next_run_time))["trigger"]
            assert again is not job.trigger
            assert again.get_next_fire_time(None, moment) == job.trigger.get_next_fire_time(
                None, moment
            )


def test_rewritten_states_share_their_trigger_and_load_like_plain_pickle() -> None:
    """What a fire writes back (OwnedJobStore: pickle_state of the job's state with a
    new next_run_time) loads with plain pickle.loads, as APScheduler's own store does,
    and with a StateCodec's load_state, which shares one trigger per distinct nested
    pickle for the codec's life (the daemon's job store keeps one)."""
    moment = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
    spec = JobSpec.model_validate(
        {"name": "a", "task": "reconciler.tasks.example_task", "schedule": {"cron": "*/5 * * * *"}}
    )
    job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
    codec = StateCodec()
    first = codec.load_state(codec.pickle_job(job, moment))
    state = apscheduler_state(job, moment.replace(minute=10))
    state["trigger"] = first["trigger"]
    rewritten = codec.pickle_state(state)
    assert rewritten == pickle_state(state)  # a codec only saves work
    plain, shared = pickle.loads(rewritten), codec.load_state(rewritten)
    assert repr(plain.pop("trigger")) == repr(shared.pop("trigger")) == repr(job.trigger)
    assert plain == shared == {k: v for k, v in state.items() if k != "trigger"}
    assert codec.load_state(rewritten)["trigger"] is first["trigger"]
    assert load_state(rewritten)["trigger"] is not first["trigger"]  # no global memory


def test_nested_next_run_times_keep_their_zone_and_fold() -> None:
    """Next run times are pickled once per value: equal instants in other zones, and
    the two 02:30 of the autumn DST change (fold 0 and 1), must each come back as such."""
    spec = JobSpec.model_validate(
        {"name": "a", "task": "reconciler.tasks.example_task", "schedule": {"cron": "*/5 * * * *"}}
    )
    job = scheduler_job(spec, spec_hash="0" * 64, revision="r1")
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    summer = datetime(2026, 6, 1, 12, 0, tzinfo=berlin)
    moments = [first, first.replace(fold=1), summer, summer.astimezone(UTC), datetime(2026, 1, 1)]
    codec = StateCodec()
    for moment in moments * 2:  # the second round comes from the codec's memory
        for load in (pickle.loads, codec.load_state):
            back = load(codec.pickle_job(job, moment))["next_run_time"]
            assert (back, back.tzinfo, back.fold) == (moment, moment.tzinfo, moment.fold)
