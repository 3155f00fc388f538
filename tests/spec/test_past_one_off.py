"""A one-off `at` in the past is accepted (it may have run already), with a warning from
`validate` and `plan`, run as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RECONCILE = str(Path(sys.executable).with_name("reconcile"))
TASK = "task: reconciler.tasks.example_task\n"
PAST = "name: once-past\n" + TASK + "schedule: {at: 2020-01-01T00:00:00}\n"
FUTURE = "name: once-later\n" + TASK + "schedule: {at: 2999-01-01T00:00:00}\n"


def reconcile(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "RECONCILER_DATABASE_URL":
           f"sqlite:///{cwd / 'state.db'}"}  # fmt: skip
    return subprocess.run([RECONCILE, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_validate_and_plan_warn_and_accept(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "once.yaml").write_text(PAST + "---\n" + FUTURE)
    text = reconcile("validate", cwd=tmp_path)
    assert text.returncode == 0
    assert text.stdout.splitlines() == [
        "warning: jobs.d/once.yaml:1:1: AT_IN_PAST the one-off time 2020-01-01T00:00:00Z"
        " is in the past: the job is accepted as completed and never fires (a run it already"
        " had stands)",
        "1 file, 2 jobs: valid, 1 warning",
    ]
    document = json.loads(reconcile("validate", "--format", "json", cwd=tmp_path).stdout)
    assert document["valid"] and [w["code"] for w in document["warnings"]] == ["AT_IN_PAST"]
    plan = reconcile("plan", "--format", "json", cwd=tmp_path)
    assert plan.returncode == 2  # both are added
    assert "AT_IN_PAST once-past" in plan.stderr and "once-later" not in plan.stderr
    changes = {c["job"]: c for c in json.loads(plan.stdout)["changes"]}
    assert set(changes) == {"once-past", "once-later"}
    assert changes["once-past"]["reason"].endswith("completed: no future fire time, it never fires")
    assert "completed" not in changes["once-later"]["reason"]


def test_describe_says_why_a_past_one_off_never_fires(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "once.yaml").write_text(PAST + "---\n" + FUTURE)
    assert reconcile("apply", "--auto-approve", cwd=tmp_path).returncode == 0
    past = reconcile("describe", "job", "once-past", cwd=tmp_path)
    assert "State:       completed" in past.stdout
    assert "Why:         the one-off time 2020-01-01T00:00:00Z is in the past" in past.stdout
    document = json.loads(
        reconcile("describe", "job", "once-past", "-o", "json", cwd=tmp_path).stdout
    )
    assert "never fires" in document["state_reason"]
    later = reconcile("describe", "job", "once-later", "-o", "json", cwd=tmp_path)
    assert json.loads(later.stdout)["state_reason"] is None
