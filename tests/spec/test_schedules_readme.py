"""The README "Schedules" section's sentences that no other test pins: each case is a
claim of that section, checked against a calendar (2027-01-01 is a Friday)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.core.schedule import CronSchedule
from reconciler.spec.cron import CronSyntaxError, compile_cron

RECONCILE = str(Path(sys.executable).with_name("reconcile"))


def fires(cron: str | dict[str, str | int], count: int = 5) -> list[str]:
    schedule = CronSchedule(compile_cron(cron), zone="UTC")
    start = datetime(2027, 1, 1, tzinfo=UTC)
    return [f.at.strftime("%a %m-%d %H:%M:%S") for f in schedule.fires(start, count)]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # names any case, ranges upwards incl. SUN-SAT and sun-thu
        ("0 6 * * SUN-SAT", ["Fri 01-01 06:00:00", "Sat 01-02 06:00:00", "Sun 01-03 06:00:00"]),
        ("0 6 * * sun-thu", ["Sun 01-03 06:00:00", "Mon 01-04 06:00:00", "Tue 01-05 06:00:00"]),
        ("0 6 1 feb,Mar *", ["Mon 02-01 06:00:00", "Mon 03-01 06:00:00", "Tue 02-01 06:00:00"]),
        # `5-7` ends on Sunday like FRI-SUN
        ("0 6 * * 5-7", ["Fri 01-01 06:00:00", "Sat 01-02 06:00:00", "Sun 01-03 06:00:00"]),
        # `a/n` is `a-max/n`
        ("50/5 23 * * *", ["Fri 01-01 23:50:00", "Fri 01-01 23:55:00", "Sat 01-02 23:50:00"]),
        # Quartz: numeric `5#3`, `FRIL`, `?` in the weekday field
        ("0 9 * * 5#3", ["Fri 01-15 09:00:00", "Fri 02-19 09:00:00", "Fri 03-19 09:00:00"]),
        ("0 9 * * FRIL", ["Fri 01-29 09:00:00", "Fri 02-26 09:00:00", "Fri 03-26 09:00:00"]),
        ("0 9 1 * ?", ["Fri 01-01 09:00:00", "Mon 02-01 09:00:00", "Mon 03-01 09:00:00"]),
        # field maps: day_of_week 0 = Monday, fields below the smallest given are 0
        (
            {"day_of_week": "0-4", "hour": 9},
            ["Fri 01-01 09:00:00", "Mon 01-04 09:00:00", "Tue 01-05 09:00:00"],
        ),
        ({"hour": 9}, ["Fri 01-01 09:00:00", "Sat 01-02 09:00:00", "Sun 01-03 09:00:00"]),
    ],
)
def test_readme_syntax_claims(cron: str | dict[str, str | int], expected: list[str]) -> None:
    assert fires(cron, len(expected)) == expected


def test_seconds_first_six_fields() -> None:
    assert fires("*/30 * * * * *", 3) == [
        "Fri 01-01 00:00:30",
        "Fri 01-01 00:01:00",
        "Fri 01-01 00:01:30",
    ]


@pytest.mark.parametrize(
    "cron",
    ["? * * * *", "0 1W * * *", "0 0 * L *", "0 0 * 1# *", "5#1 0 0 * * *", "0 0 * * 5W"],
)
def test_day_field_forms_elsewhere_are_refused(cron: str) -> None:
    with pytest.raises(CronSyntaxError):
        compile_cron(cron)


def test_every_host_dependent_zone_is_refused(tmp_path: Path) -> None:
    zones = ["localtime", "posixrules", "Factory", "posix/Europe/Berlin", "right/UTC"]
    for index, zone in enumerate(zones):
        (tmp_path / f"j{index}.yaml").write_text(
            f"name: j{index}\ntask: reconciler.tasks.example_task\n"
            f'schedule: {{cron: "0 0 * * *"}}\ntimezone: {zone}\n'
        )
    result = subprocess.run(
        [RECONCILE, "validate", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    for index in range(len(zones)):
        line = next(x for x in result.stdout.splitlines() if f"j{index}.yaml" in x)
        assert "HOST_TIMEZONE" in line, line
