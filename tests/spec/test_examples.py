"""The example jobs in jobs.d/: valid, editor-ready, and covering the format."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.settings import Settings
from reconciler.spec.loader import load_jobs
from reconciler.spec.model import CronFieldMap, CronSchedule, DateSchedule, IntervalSchedule

from .conftest import NOW

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs.d"
SCHEMA_COMMENT = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def test_examples_are_valid(settings: Settings) -> None:
    result = load_jobs(JOBS, settings=settings, now=NOW)
    assert result.valid, [d.render() for d in result.diagnostics]
    assert 5 <= len(result.jobs) <= 8


def test_every_example_points_at_the_schema() -> None:
    files = sorted(JOBS.rglob("*.y*ml"))
    assert files
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        match = SCHEMA_COMMENT.match(first)
        assert match, f"{path}: first line must be the schema comment"
        assert (path.parent / match.group(1)).resolve() == ROOT / "schemas" / "job.v1.json"


def test_examples_cover_the_format(settings: Settings) -> None:
    specs = [job.spec for job in load_jobs(JOBS, settings=settings, now=NOW).jobs]
    crons = [s.schedule.cron for s in specs if isinstance(s.schedule, CronSchedule)]
    assert any(isinstance(c, str) and len(c.split()) == 5 for c in crons)
    assert any(isinstance(c, str) and len(c.split()) == 6 for c in crons)
    assert any(isinstance(c, CronFieldMap) for c in crons)
    assert any(isinstance(s.schedule, IntervalSchedule) for s in specs)
    dates = [s.schedule.at for s in specs if isinstance(s.schedule, DateSchedule)]
    assert dates and all(at.year >= 2030 for at in dates)
    assert any(s.paused for s in specs)
    assert {s.queue for s in specs} == {"default", "high_priority", "low_priority", "scheduled"}
    assert len({job.source.split("/")[0] for job in load_jobs(JOBS, settings=settings).jobs}) >= 3


def test_the_seed_example_task_is_declared(settings: Settings) -> None:
    by_name = {job.spec.name: job.spec for job in load_jobs(JOBS, settings=settings, now=NOW).jobs}
    example = by_name["example-task"]
    assert example.task == "reconciler.tasks.example_task"
    assert isinstance(example.schedule, CronSchedule)
    assert example.schedule.cron == CronFieldMap(second="*/30")
    assert example.kwargs == {"data": {"key": "value"}}
