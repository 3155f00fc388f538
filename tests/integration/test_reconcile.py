"""plan / apply / status against the real databases (PostgreSQL and SQLite), through the
real command line: every action, quarantine, guards, drift, foreign rows, stale plans."""

from __future__ import annotations

import json
import pickle
import time

import pytest
from apscheduler.triggers.cron import CronTrigger

from tests.integration.workspace import Workspace, job_yaml

pytestmark = pytest.mark.services


def seed(ws: Workspace, count: int = 5) -> None:
    for index in range(count):
        ws.write(f"team/job{index}.yaml", job_yaml(f"job{index}"))


def plan_json(ws: Workspace, *flags: str) -> dict:
    result = ws.cli("plan", "--format", "json", *flags)
    assert result.code in (0, 2, 3), result.err
    return json.loads(result.out)


def actions(ws: Workspace) -> list[tuple[str, str]]:
    changes = plan_json(ws)["changes"]
    print([(c["action"], c["job"], c["reason"]) for c in changes])  # shown on failure
    return [(c["action"], c["job"]) for c in changes]


def test_apply_then_plan_has_no_changes(workspace: Workspace) -> None:
    seed(workspace)
    first = workspace.cli("apply")
    assert first.code == 0, first.err
    assert "Applied: 5 add" in first.out
    again = workspace.cli("plan")
    assert again.code == 0, again.out + again.err
    assert "No changes." in again.out
    assert "No changes" in workspace.cli("apply").out
    assert workspace.scalar("select count(*) from scheduled_jobs") == 5
    assert workspace.scalar("select count(*) from apscheduler_jobs") == 5
    outcomes = [row[0] for row in workspace.rows("select outcome from reconcile_runs order by id")]
    assert outcomes == ["applied", "no_changes"]


def test_each_file_edit_is_exactly_its_action(workspace: Workspace) -> None:
    seed(workspace)
    assert workspace.cli("apply").code == 0
    workspace.write("team/job0.yaml", job_yaml("job0", cron="0 * * * *"))
    workspace.write("team/job1.yaml", job_yaml("job1", paused="true"))
    workspace.remove("team/job2.yaml")
    assert sorted(actions(workspace)) == [("pause", "job1"), ("remove", "job2"), ("update", "job0")]
    assert workspace.cli("plan").code == 2
    assert workspace.cli("apply").code == 0
    assert workspace.scalar("select next_run_time from apscheduler_jobs where id = 'job1'") is None
    assert workspace.scalar("select count(*) from apscheduler_jobs where id = 'job2'") == 0
    workspace.write("team/job1.yaml", job_yaml("job1"))
    assert actions(workspace) == [("resume", "job1")]
    before = time.time()
    assert workspace.cli("apply").code == 0
    resumed = workspace.scalar("select next_run_time from apscheduler_jobs where id = 'job1'")
    assert isinstance(resumed, float) and resumed > before  # from now, never in the past
    assert actions(workspace) == []


def test_schedule_change_never_fires_immediately_and_other_edits_keep_timing(
    workspace: Workspace,
) -> None:
    workspace.write("a.yaml", job_yaml("a", cron="*/5 * * * *"))
    assert workspace.cli("apply").code == 0
    first = workspace.scalar("select next_run_time from apscheduler_jobs where id = 'a'")
    workspace.write("a.yaml", job_yaml("a", cron="*/5 * * * *", description="now documented"))
    assert workspace.cli("apply").code == 0
    assert workspace.scalar("select next_run_time from apscheduler_jobs where id = 'a'") == first
    workspace.write("a.yaml", job_yaml("a", cron="0 0 1 1 *"))
    assert workspace.cli("apply").code == 0
    moved = workspace.scalar("select next_run_time from apscheduler_jobs where id = 'a'")
    assert isinstance(moved, float) and moved > time.time() + 3600


def test_broken_file_is_quarantined_and_the_rest_still_applies(workspace: Workspace) -> None:
    seed(workspace, 3)
    assert workspace.cli("apply").code == 0
    spec_before = workspace.scalar("select spec_hash from scheduled_jobs where name = 'job1'")
    row_before = workspace.rows(
        "select next_run_time, job_state from apscheduler_jobs where id='job1'"
    )
    workspace.write("team/job1.yaml", "name: job1\ntask: [unclosed\n")
    workspace.write("team/new.yaml", job_yaml("new"))
    workspace.remove("team/job2.yaml")
    plan = plan_json(workspace, "--allow-invalid")
    assert [q["path"] for q in plan["quarantined"]] == ["team/job1.yaml"]
    assert plan["quarantined"][0]["errors"][0]["code"] == "YAML_SYNTAX"
    assert sorted((c["action"], c["job"]) for c in plan["changes"]) == [
        ("add", "new"),
        ("remove", "job2"),
    ]
    # One-shot commands fail on an invalid file (CI goes red) unless told to go on.
    assert workspace.cli("plan").code == 1
    assert workspace.cli("apply").code == 1
    assert workspace.cli("apply", "--allow-invalid").code == 0
    assert (
        workspace.scalar("select spec_hash from scheduled_jobs where name = 'job1'") == spec_before
    )
    assert (
        workspace.rows("select next_run_time, job_state from apscheduler_jobs where id='job1'")
        == row_before
    )
    status = json.loads(workspace.cli("status", "--format", "json").out)
    assert [q["path"] for q in status["quarantined_files"]] == ["team/job1.yaml"]
    workspace.write("team/job1.yaml", job_yaml("job1"))
    assert workspace.cli("apply").code == 0
    assert json.loads(workspace.cli("status", "--format", "json").out)["quarantined_files"] == []


def test_mass_delete_is_refused_and_changes_nothing(workspace: Workspace) -> None:
    seed(workspace, 10)
    assert workspace.cli("apply").code == 0
    for index in range(8):
        workspace.remove(f"team/job{index}.yaml")
    assert workspace.cli("plan").code == 3
    refused = workspace.cli("apply")
    assert refused.code == 3, refused.out + refused.err
    assert "--allow-mass-delete" in refused.err
    assert workspace.scalar("select count(*) from scheduled_jobs") == 10
    assert workspace.scalar("select count(*) from apscheduler_jobs") == 10
    assert (
        workspace.scalar("select outcome from reconcile_runs order by id desc limit 1") == "refused"
    )
    assert workspace.cli("apply", "--allow-mass-delete").code == 0
    assert workspace.scalar("select count(*) from scheduled_jobs") == 2


def test_empty_jobs_folder_is_refused(workspace: Workspace) -> None:
    seed(workspace, 2)
    assert workspace.cli("apply").code == 0
    workspace.remove("team/job0.yaml")
    workspace.remove("team/job1.yaml")
    result = workspace.cli("apply", "--allow-mass-delete")
    assert result.code == 0  # explicitly allowed
    seed(workspace, 2)
    assert workspace.cli("apply").code == 0
    workspace.remove("team/job0.yaml")
    workspace.remove("team/job1.yaml")
    refused = workspace.cli("apply")
    assert refused.code == 3 and "no job at all" in refused.err


def test_lost_or_altered_scheduler_rows_are_repaired(workspace: Workspace) -> None:
    seed(workspace, 3)
    assert workspace.cli("apply").code == 0
    workspace.execute("delete from apscheduler_jobs where id = 'job0'")
    state = pickle.loads(
        workspace.rows("select job_state from apscheduler_jobs where id = 'job1'")[0][0]
    )
    state["trigger"] = CronTrigger(minute="7", timezone="UTC")
    workspace.execute(
        "update apscheduler_jobs set job_state = :state where id = 'job1'",
        state=pickle.dumps(state),
    )
    plan = plan_json(workspace)
    assert [(c["action"], c["job"]) for c in plan["changes"]] == [
        ("repair", "job0"),
        ("repair", "job1"),
    ]
    assert "missing" in plan["changes"][0]["reason"]
    assert "trigger differs" in plan["changes"][1]["reason"]
    status = json.loads(workspace.cli("status", "--format", "json").out)
    drifted = [(item["job"], item["drift"]) for item in status["drifted_jobs"]]
    assert drifted == [("job0", "missing_scheduler_row")]
    assert workspace.cli("apply").code == 0
    assert actions(workspace) == []
    assert workspace.scalar("select repaired from reconcile_runs order by id desc limit 1") == 2


def test_foreign_rows_are_reported_and_never_touched(workspace: Workspace) -> None:
    seed(workspace, 2)
    assert workspace.cli("db", "upgrade").code == 0
    workspace.execute(
        "insert into apscheduler_jobs (id, next_run_time, job_state) values ('theirs', 1.5, :s)",
        s=b"not a pickle",
    )
    plan = plan_json(workspace)
    assert plan["foreign"] == ["theirs"]
    assert workspace.cli("apply").code == 0
    assert workspace.rows(
        "select next_run_time, job_state from apscheduler_jobs where id='theirs'"
    ) == [(1.5, b"not a pickle")]
    status = json.loads(workspace.cli("status", "--format", "json").out)
    assert status["drifted_jobs"] == [{"job": "theirs", "drift": "foreign_scheduler_row"}]


def test_plan_hash_guards_apply_against_a_moved_state(workspace: Workspace) -> None:
    seed(workspace, 2)
    previewed = plan_json(workspace)["plan_hash"]
    workspace.write("team/extra.yaml", job_yaml("extra"))
    stale = workspace.cli("apply", "--plan-hash", previewed)
    # The files changed since the preview: a different plan, both hashes shown.
    assert stale.code == 1 and "a different plan" in stale.err and previewed in stale.err
    assert workspace.scalar("select count(*) from scheduled_jobs") == 0
    fresh = plan_json(workspace)["plan_hash"]
    assert workspace.cli("apply", "--plan-hash", fresh).code == 0
    assert workspace.scalar("select count(*) from scheduled_jobs") == 3


def test_rows_are_apscheduler_rows(workspace: Workspace) -> None:
    """APScheduler's own store reads what we write: id, callable, trigger, next run."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from reconciler.store.db import sync_url

    seed(workspace, 2)
    assert workspace.cli("apply").code == 0
    store = SQLAlchemyJobStore(url=sync_url(workspace.db_url).render_as_string(False))
    store.start(None, "default")  # type: ignore[arg-type]  # no scheduler: only lookup_job
    try:
        job = store.lookup_job("job0")  # lookup_job raises, never deletes
        assert job is not None
        assert job.func_ref == "reconciler.dispatch.fire:fire_job"
        assert job.kwargs["job"] == "job0"
        stored = workspace.scalar("select next_run_time from apscheduler_jobs where id='job0'")
        assert job.next_run_time.timestamp() == stored
    finally:
        store.shutdown()


def test_rows_written_by_older_builds_are_repaired_once_never_deleted(
    workspace: Workspace,
) -> None:
    """Before the schedule engine, WallClockCronTrigger was a CronTrigger subclass: its
    rows hold CronTrigger's state under the same class name. They load, and the drift
    check rewrites each once into the engine's trigger."""
    import copyreg
    import io

    from reconciler.core.dst import WallClockCronTrigger

    seed(workspace, 2)
    assert workspace.cli("apply").code == 0
    old = CronTrigger(minute="*/5", timezone="UTC")

    class OldBuild(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is old:
                return (
                    copyreg._reconstructor,
                    (WallClockCronTrigger, object, None),
                    old.__getstate__(),
                )
            return NotImplemented

    state = pickle.loads(
        workspace.rows("select job_state from apscheduler_jobs where id = 'job1'")[0][0]
    )
    state["trigger"] = old
    buffer = io.BytesIO()
    OldBuild(buffer, pickle.HIGHEST_PROTOCOL).dump(state)
    workspace.execute(
        "update apscheduler_jobs set job_state = :state where id = 'job1'", state=buffer.getvalue()
    )
    assert actions(workspace) == [("repair", "job1")]
    assert workspace.cli("apply").code == 0
    assert actions(workspace) == []
    rows = workspace.rows("select id, job_state from apscheduler_jobs order by id")
    assert [r[0] for r in rows] == ["job0", "job1"]
    repaired = pickle.loads(rows[1][1])["trigger"]
    assert repr(repaired) == "<WallClockCronTrigger (cron='*/5 * * * *', timezone='UTC')>"
