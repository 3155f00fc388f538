"""The first fire times of added jobs (engine.apply), computed once per trigger the jobs
share: each job gets exactly the time `first_fire_after` gives it alone; a job with
jitter gets its own random one; a paused job none."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.memory import CoreMemory
from reconciler.core.state import ActualState
from reconciler.core.triggers import first_fire_after
from reconciler.engine.apply import _scheduled
from tests.unit.core.planning import NOW, desired, plan, spec


def test_jobs_sharing_a_trigger_get_each_their_own_first_fire() -> None:
    specs = [
        spec(f"job-{n}", schedule={"cron": f"{n % 3} 3 * * *"}, timezone="Europe/Berlin")
        for n in range(9)
    ]
    specs += [
        spec("every-minute", schedule={"interval": {"minutes": 1}}),
        spec("jittered", jitter_seconds=30),
        spec("paused", paused=True),
    ]
    memory = CoreMemory()
    made = plan(desired(*specs), ActualState({}, {}), memory=memory, preview_fires=False)
    targets = [change.target for change in made.changes if change.target is not None]
    assert len(targets) == len(specs)
    for triggers in (memory.triggers, None):
        rows = _scheduled(targets, {}, NOW, triggers)
        assert [job.id for job, _ in rows] == [target.spec.name for target in targets]
        for (_, moment), target in zip(rows, targets, strict=True):
            name = target.spec.name
            if name == "paused":
                assert moment is None
            elif name == "jittered":  # */5 with up to 30 s of jitter
                plain = first_fire_after(spec("plain"), now=NOW)
                assert moment is not None and plain is not None
                assert plain <= moment <= plain + timedelta(seconds=30)
            else:
                alone = first_fire_after(target.spec, now=NOW)
                assert moment is not None and alone is not None
                assert (moment, moment.tzinfo) == (alone, alone.tzinfo)
    by_name = {job.id: moment for job, moment in _scheduled(targets, {}, NOW, memory.triggers)}
    assert by_name["job-0"] is by_name["job-3"] is by_name["job-6"]  # one trigger, one time
    assert by_name["job-0"] != by_name["job-1"]
