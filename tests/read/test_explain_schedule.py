"""`reconcile explain` names a job's schedule as `get jobs` and the API do (one read model):
a seed's cron field map is `second=*/30`, not every field of the map with its `None`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.console import console


def test_explain_and_get_show_a_field_map_alike(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "seed.yaml").write_text(
        "name: seed\ntask: reconciler.tasks.example_task\nschedule: {cron: {second: '*/30'}}\n"
    )
    reconcile = console(tmp_path)

    reconcile("apply", "--auto-approve")
    (listed,) = json.loads(reconcile("get", "jobs", "-o", "json"))["items"]
    explained = json.loads(reconcile("explain", "seed", "--since", "1h", "-o", "json"))
    assert (
        listed["schedule"]
        == explained["schedule"]
        == {
            "kind": "cron",
            "value": "second=*/30",
            "timezone": "UTC",
        }
    )
    assert "Schedule: second=*/30 (UTC)" in reconcile("explain", "seed", "--since", "1h")
