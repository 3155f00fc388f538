"""The plan's field diffs say what changes, run as users run it (the console script): a
mapping that was empty and now holds fields shows those fields, never the mapping turning
into null (`kwargs: {} -> null` was printed beside `kwargs.data.a: null -> 1`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cronsim import CronSim

from reconciler.core.diff import FieldDiffer, changed_paths

RECONCILE = str(Path(sys.executable).parent / "reconcile")
JOB = "name: d\ntask: reconciler.tasks.example_task\nschedule: {cron: '0 0 1 1 *'}\n"


def _console(cwd: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The console script in `cwd`, with none of the caller's RECONCILER_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}

    def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RECONCILE, *args], cwd=cwd, env=env, capture_output=True, text=True)

    return reconcile


def test_a_mapping_that_gets_fields_shows_only_the_fields(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "d.yaml").write_text(JOB)
    reconcile = _console(tmp_path)
    assert reconcile("apply", "--auto-approve").returncode == 0
    (jobs / "d.yaml").write_text(JOB + "kwargs: {data: {a: 1}}\nlabels: {team: x}\n")
    plan = reconcile("plan", "--format", "json")
    assert plan.returncode == 2, plan.stderr
    (change,) = json.loads(plan.stdout)["changes"]
    assert change["diffs"] == [
        {"path": "kwargs.data.a", "before": None, "after": 1},
        {"path": "labels.team", "before": None, "after": "x"},
    ]
    text = reconcile("plan").stdout
    assert "kwargs: {} -> null" not in text and 'labels.team: null -> "x"' in text


def test_a_value_replaced_by_a_mapping_still_shows_both() -> None:
    before, after = {"kwargs": {"data": 5}}, {"kwargs": {"data": {"a": 1}}}
    diffs = [(d.path, d.before, d.after) for d in FieldDiffer().diff(before, after)]
    assert diffs == [("kwargs.data", 5, None), ("kwargs.data.a", None, 1)]
    assert changed_paths(before, after) == ["kwargs.data", "kwargs.data.a"]
    emptied = {"kwargs": {"data": {"a": 1}}}, {"kwargs": {}}
    assert changed_paths(*emptied) == ["kwargs.data.a"]


def test_the_markdown_plan_shows_the_next_fires_before_and_after(tmp_path: Path) -> None:
    """DESIGN: CI posts `plan --format markdown` "with field-level diffs and the next fire
    times before and after". A cron moved from 02:30 to 03:30 (Europe/Berlin): the diff
    block's `-   next fires:` line lists the old cron's fires, its `+   next fires:` line
    the new one's, each time checked against cronsim (not our cron code)."""
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    job = "name: m\ntask: reconciler.tasks.example_task\ntimezone: Europe/Berlin\n"
    (jobs / "m.yaml").write_text(job + "schedule: {cron: '30 2 * * *'}\n")
    reconcile = _console(tmp_path)
    assert reconcile("apply", "--auto-approve").returncode == 0
    (jobs / "m.yaml").write_text(job + "schedule: {cron: '30 3 * * *'}\n")
    plan = reconcile("plan", "--format", "markdown")
    assert plan.returncode == 2, plan.stderr
    fires = {
        line[0]: [datetime.fromisoformat(t) for t in line.split(": ", 1)[1].split(", ")]
        for line in plan.stdout.splitlines()
        if line.startswith(("-   next fires: ", "+   next fires: "))
    }
    assert set(fires) == {"-", "+"}, plan.stdout
    berlin = ZoneInfo("Europe/Berlin")
    for sign, cron in (("-", "30 2 * * *"), ("+", "30 3 * * *")):
        first = fires[sign][0]
        expected = CronSim(cron, (first - timedelta(seconds=1)).astimezone(berlin))
        assert fires[sign] == [next(expected) for _ in fires[sign]], (sign, plan.stdout)
        assert all(t.astimezone(berlin).hour == int(cron.split()[1]) for t in fires[sign])
