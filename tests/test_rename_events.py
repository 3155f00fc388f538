"""A rename keeps a job's history (README: the inventory row, run history and next fire
move to the new name): `describe job NEW` lists the events from before the rename too,
run as users run it (the console script on SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.console import console

JOB = "name: {name}\ntask: reconciler.tasks.example_task\nschedule: {{cron: '{cron}'}}\n"


def test_describe_after_a_rename_lists_the_earlier_events(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    reconcile = console(tmp_path)

    for text in (
        JOB.format(name="tick", cron="0 0 1 1 *"),
        JOB.format(name="tick", cron="0 0 2 1 *"),
        JOB.format(name="tock", cron="0 0 2 1 *") + "previous_names: [tick]\n",
    ):
        (jobs / "job.yaml").write_text(text)
        reconcile("apply", "--auto-approve")
    events = json.loads(reconcile("describe", "job", "tock", "-o", "json"))["events"]
    assert sorted(event["action"] for event in events) == ["rename", "update"], events


def test_a_rename_is_counted_as_a_rename(tmp_path: Path) -> None:
    """DESIGN: `reconcile_runs` records counts per action. A pass that renames a job
    counts one rename and no update, in `status -o json` and in the status line; a pass
    that updates counts an update."""
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    reconcile = console(tmp_path)
    passes = []
    for text in (
        JOB.format(name="tick", cron="0 0 1 1 *"),
        JOB.format(name="tock", cron="0 0 1 1 *") + "previous_names: [tick]\n",
        JOB.format(name="tock", cron="0 0 2 1 *") + "previous_names: [tick]\n",
    ):
        (jobs / "job.yaml").write_text(text)
        reconcile("apply", "--auto-approve")
        passes.append(json.loads(reconcile("status", "-o", "json"))["last_reconcile"])
    assert [(p["added"], p["renamed"], p["updated"]) for p in passes] == [
        (1, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
    ], passes
    assert "(+0 ~1 -0 !0," in reconcile("status")
