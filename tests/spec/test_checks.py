"""Semantic checks: allowlist, queues, crons that never fire, duplicate names."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from reconciler.settings import Settings
from reconciler.spec.checks import (
    NameSite,
    check_job,
    cron_fires,
    find_duplicate_names,
    is_task_allowed,
)
from reconciler.spec.model import JobSpec

from .conftest import NOW


def spec(schedule: object, **fields: object) -> JobSpec:
    data = {"name": "j", "task": "reconciler.tasks.example_task", "schedule": schedule, **fields}
    return JobSpec.model_validate(data)


@pytest.mark.parametrize(
    ("task", "allowlist", "allowed"),
    [
        ("reconciler.tasks.x", ("reconciler.tasks.*",), True),
        ("reconciler.tasks.sub.x", ("reconciler.tasks.",), True),
        ("reconciler.tasksx.y", ("reconciler.tasks.*",), False),
        ("app.tasks.send", ("app.tasks.send",), True),
        ("app.tasks.send2", ("app.tasks.send",), False),
        ("celery.backend_cleanup", ("celery.*",), False),
        ("celery.chord_unlock", ("celery.chord_unlock",), False),
        ("celery.group", ("*",), False),
        ("anything.at_all", ("*",), True),
        ("a.b", (), False),
    ],
)
def test_task_allowlist(task: str, allowlist: tuple[str, ...], allowed: bool) -> None:
    assert is_task_allowed(task, allowlist) is allowed


def test_celery_internal_is_refused_even_when_allowlisted() -> None:
    settings = Settings(task_allowlist=("celery.*",))
    (finding,) = check_job(
        spec({"interval": {"minutes": 1}}, task="celery.backend_cleanup"),
        settings=settings,
        now=NOW,
    )
    assert finding.code == "TASK_NOT_ALLOWED" and "never allowed" in finding.message


def test_unknown_queue(settings: Settings) -> None:
    (finding,) = check_job(
        spec({"interval": {"minutes": 1}}, queue="urgent"), settings=settings, now=NOW
    )
    assert (finding.field, finding.code) == (("queue",), "UNKNOWN_QUEUE")


@pytest.mark.parametrize(
    ("cron", "fires"),
    [
        ("0 0 31 2 *", False),  # 31 February
        ("0 0 30 2 *", False),
        ("0 0 31 4,6,9,11 *", False),
        ({"day": "31", "month": "4,6,9,11", "day_of_week": "mon"}, False),
        ({"day": "13", "day_of_week": "fri"}, True),  # Friday the 13th
        ("0 0 29 2 *", True),  # leap years
        ("0 0 31 * *", True),
        ("*/30 * * * * *", True),
        ({"month": "2", "day": "31", "day_of_week": "mon"}, False),
        ({"year": "2020"}, False),  # in the past
        ({"year": "2030", "month": "2", "day": "29"}, False),  # 2030 is no leap year
        ({"year": "2032", "month": "2", "day": "29"}, True),
    ],
)
def test_cron_fires(cron: object, fires: bool) -> None:
    assert cron_fires(spec({"cron": cron}), now=NOW) is fires


def test_impossible_cron_is_decided_quickly() -> None:
    # APScheduler alone searches up to the year 9999 (0.1-0.5 s per expression); the
    # 400-year horizon keeps a file full of distinct impossible crons cheap.
    start = time.perf_counter()
    for day in range(30, 32):
        for month in ("2", "4", "6"):
            crons = {"day": str(day), "month": month, "hour": str(day % 24)}
            if month != "2" and day == 30:
                continue
            assert not cron_fires(spec({"cron": crons}, start=datetime(2027, 1, 1)), now=NOW)
    assert time.perf_counter() - start < 1.0


def test_start_in_the_future_is_respected() -> None:
    far = spec({"cron": {"year": "2030"}}, start=datetime(2031, 1, 1, tzinfo=UTC))
    assert not cron_fires(far, now=NOW)


def test_date_in_the_past_is_not_an_error(settings: Settings) -> None:
    assert check_job(spec({"at": datetime(2001, 1, 1)}), settings=settings, now=NOW) == ()


def test_duplicate_names_name_each_other() -> None:
    sites = [
        NameSite("a", "x.yaml", 1, 1),
        NameSite("b", "x.yaml", 5, 1),
        NameSite("a", "y.yaml", 3, 1),
        NameSite("a", "z.yaml", 7, 3),
    ]
    rendered = [d.render() for d in find_duplicate_names(sites)]
    assert rendered == [
        "x.yaml:1:1: DUPLICATE_JOB job 'a' is also declared at y.yaml:3, z.yaml:7",
        "y.yaml:3:1: DUPLICATE_JOB job 'a' is also declared at x.yaml:1, z.yaml:7",
        "z.yaml:7:3: DUPLICATE_JOB job 'a' is also declared at x.yaml:1, y.yaml:3",
    ]
