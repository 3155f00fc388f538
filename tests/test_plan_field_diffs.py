"""The plan's field diffs say what changes, run as users run it (the console script): a
mapping that was empty and now holds fields shows those fields, never the mapping turning
into null (`kwargs: {} -> null` was printed beside `kwargs.data.a: null -> 1`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reconciler.core.diff import FieldDiffer, changed_paths

RECONCILE = str(Path(sys.executable).parent / "reconcile")
JOB = "name: d\ntask: reconciler.tasks.example_task\nschedule: {cron: '0 0 1 1 *'}\n"


def test_a_mapping_that_gets_fields_shows_only_the_fields(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "d.yaml").write_text(JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}

    def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RECONCILE, *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

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
