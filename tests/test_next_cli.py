"""`reconcile next`, run as users run it: the console script in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

RECONCILE = str(Path(sys.executable).with_name("reconcile"))
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECONCILE, "next", *args], capture_output=True, text=True, cwd=cwd)


def test_the_readme_example_is_what_it_prints() -> None:
    example = re.search(r"```\n\$ reconcile next (.+?)\n(.+?)```", README, re.DOTALL)
    assert example is not None
    arguments = re.findall(r"'[^']*'|\S+", example.group(1))
    done = run(*[a.strip("'") for a in arguments])
    assert done.returncode == 0, done.stderr
    assert done.stdout == example.group(2)


def test_a_job_from_the_job_files_as_json(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "a.yaml").write_text(
        "name: seed-weekdays\ntask: reconciler.tasks.example_task\n"
        "schedule: {cron: {day_of_week: '0-4', hour: 9}}\ntimezone: Australia/Lord_Howe\n"
    )
    done = run("seed-weekdays", "--from", "2027-10-01T12:00", "--count", "4", "--format", "json",
               "--jobs-dir", str(jobs))  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["dst"] == {"gap": "next", "repeat": "first"}
    # APScheduler's field map: day_of_week 0 = Monday. 2027-10-01 is a Friday.
    days = [f["at"][:10] for f in document["fires"]]
    assert days == ["2027-10-04", "2027-10-05", "2027-10-06", "2027-10-07"]
    assert [f["at"][-6:] for f in document["fires"]] == ["+11:00"] * 4  # after the jump


def test_dst_markers_on_an_autumn_night() -> None:
    done = run("--cron", "*/30 * * * *", "--timezone", "Australia/Lord_Howe",
               "--from", "2027-04-04T01:00", "--count", "3", "--format", "json")  # fmt: skip
    fires = json.loads(done.stdout)["fires"]
    assert [(f["at"], f["dst"]) for f in fires] == [
        ("2027-04-04T01:30:00+11:00", "repeat-first"),
        ("2027-04-04T01:30:00+10:30", "repeat-second"),
        ("2027-04-04T02:00:00+10:30", None),
    ]


def test_refusals_exit_1_with_the_reason() -> None:
    host = run("--cron", "0 0 * * *", "--timezone", "localtime")
    assert host.returncode == 1 and "depends on the host" in host.stderr
    both = run("some-job", "--cron", "0 0 * * *")
    assert both.returncode == 1 and "one of them" in both.stderr
    bad = run("--cron", "0 9 * * FRI#6")
    assert bad.returncode == 1 and "weekday occurrence 6" in bad.stderr
    # A cron that never fires is refused in job files (CRON_NEVER_FIRES): the same input.
    never = run("--cron", "0 0 31 2 *")
    assert never.returncode == 1 and "never fires" in never.stderr, never
