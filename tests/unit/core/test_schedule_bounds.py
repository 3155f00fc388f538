"""The schedule engine on rare, impossible and boundary patterns: bounded work, right
answers (cronsim on a naive clock is the oracle where it reads the expression)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from reconciler.core.schedule import CronSchedule
from reconciler.core.zones import ZoneClock
from reconciler.spec.cron import compile_cron

BERLIN = ZoneInfo("Europe/Berlin")
RECONCILE = str(Path(sys.executable).with_name("reconcile"))


def _fresh(cron: str, zone: str = "Europe/Berlin", **bounds: datetime) -> CronSchedule:
    schedule = CronSchedule(compile_cron(cron), zone=zone, **bounds)
    schedule.clock = ZoneClock(zone)  # unshared: its memo counts the zone years scanned
    return schedule


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 L-30 2 *", "0 0 31W 2 *"])
def test_a_never_matching_cron_answers_none_without_walking_the_zone(cron: str) -> None:
    # Before: every zone segment of 401 years was walked (~5 s per call, i.e. per
    # `reconcile next --cron`, per APScheduler wake-up on such a row).
    schedule = _fresh(cron)
    assert schedule.next_fire(datetime(2027, 1, 1, tzinfo=UTC)) is None
    assert len(schedule.clock._years) <= 3


def test_a_rare_cron_jumps_to_its_next_match_and_agrees_with_cronsim() -> None:
    # Day 30 OR the 5th Monday, in February only: a Monday 29 February (28 years apart).
    cron = "0 0 30 2 MON#5"
    schedule = _fresh(cron, zone="UTC")
    start = datetime(2027, 12, 31, 23, 58)
    fires = [f.wall for f in schedule.fires(start.replace(tzinfo=UTC), 3)]
    oracle = CronSim(cron, start)
    assert fires == [next(oracle) for _ in range(3)]
    assert fires[0] == datetime(2044, 2, 29)
    assert len(schedule.clock._years) <= 3 * 3  # the years around each fire, not 85


def test_year_boundary_with_seconds_and_an_end_date() -> None:
    end = datetime(2027, 12, 31, 23, 59, 40, tzinfo=BERLIN)
    schedule = _fresh("*/20 59 23 31 12 *", end=end)
    fires = schedule.fires(datetime(2027, 12, 31, 23, 59, 5, tzinfo=BERLIN), 5)
    assert [f.at for f in fires] == [
        datetime(2027, 12, 31, 23, 59, 20, tzinfo=BERLIN),
        datetime(2027, 12, 31, 23, 59, 40, tzinfo=BERLIN),
    ]
    # Once a year, and the end is inclusive; the next one (2028) is past the end.
    yearly = _fresh("59 23 31 12 *", end=datetime(2028, 12, 31, 23, 59, tzinfo=BERLIN))
    walls = [f.wall for f in yearly.fires(datetime(2027, 6, 1, tzinfo=BERLIN), 5)]
    assert walls == [datetime(2027, 12, 31, 23, 59), datetime(2028, 12, 31, 23, 59)]


def test_the_calendar_edges_answer_instead_of_crashing() -> None:
    first = _fresh("0 0 * * *", zone="UTC").next_fire(datetime(1, 1, 1, tzinfo=UTC))
    assert first is not None and first.wall == datetime(1, 1, 2)
    assert _fresh("0 0 * * *").next_fire(datetime(9999, 12, 31, tzinfo=UTC)) is None
    # A --from the zone cannot convert is a refusal with the reason, not an internal error.
    result = subprocess.run(
        [RECONCILE, "next", "--cron", "0 0 * * *", "--timezone", "Pacific/Chatham",
         "--from", "0001-01-01"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "out of the calendar's range" in result.stderr
