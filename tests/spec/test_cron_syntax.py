"""Cron syntax the oracle (cronsim) does not cover: Quartz's W, L-n and ?, Sunday-ended
ranges, field maps' own forms, and every refusal with its reason. Expected dates are
checked against a calendar by hand (2027-05-15 is a Saturday, 2027-08-15 a Sunday...)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.schedule import CronSchedule
from reconciler.spec.cron import CronSyntaxError, compile_cron


def days(cron: str | dict[str, str | int], after: str, count: int = 4) -> list[str]:
    schedule = CronSchedule(compile_cron(cron), zone="UTC")
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    return [fire.at.strftime("%Y-%m-%d %H:%M") for fire in schedule.fires(start, count)]


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # nearest weekday, never leaving the month
        ("0 0 15W * *", "2027-05-01", ["2027-05-14", "2027-06-15", "2027-07-15", "2027-08-16"]),
        ("0 0 1W * *", "2027-04-15", ["2027-05-03", "2027-06-01", "2027-07-01", "2027-08-02"]),
        ("0 0 LW * *", "2027-01-01", ["2027-01-29", "2027-02-26", "2027-03-31", "2027-04-30"]),
        ("0 0 L-2 2 *", "2027-01-01", ["2027-02-26", "2028-02-27", "2029-02-26", "2030-02-26"]),
        ("0 0 ? * MON", "2027-01-01", ["2027-01-04", "2027-01-11", "2027-01-18", "2027-01-25"]),
        ("0 0 * * FRI-SUN", "2027-01-01", ["2027-01-02", "2027-01-03", "2027-01-08", "2027-01-09"]),
        ("0 0 * * 7", "2027-01-01", ["2027-01-03", "2027-01-10", "2027-01-17", "2027-01-24"]),
        # field maps: APScheduler's meaning (0 = Monday, positions in the day field)
        ({"day_of_week": "0-1", "hour": 0}, "2027-01-01",
         ["2027-01-04", "2027-01-05", "2027-01-11", "2027-01-12"]),
        ({"day": "2nd mon", "hour": 0}, "2027-01-01",
         ["2027-01-11", "2027-02-08", "2027-03-08", "2027-04-12"]),
        ({"day": "last fri"}, "2027-01-01",
         ["2027-01-29", "2027-02-26", "2027-03-26", "2027-04-30"]),
        ({"week": 1, "day_of_week": "mon"}, "2027-01-01",
         ["2027-01-04", "2028-01-03", "2029-01-01", "2029-12-31"]),
    ],
)  # fmt: skip
def test_quartz_forms_and_field_maps(cron, after, expected) -> None:
    assert days(cron, after) == [f"{day} 00:00" for day in expected]


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 0 * * L", "ambiguous"),
        ("0 L * * *", "day fields only"),
        ("0 0 * * FRI-MON", "runs backwards"),
        ("60 * * * *", "out of range 0-59"),
        ("0 0 * * * * *", "this one has 7"),
        ("@every", "unknown macro"),
        ("H * * * *", "not a number"),
        ("*/0 * * * *", "step 0"),
        ("0 9 * * FRI#6", "occurrence 6"),
        ({"day_of_week": "sun-sat"}, "minimum value"),  # APScheduler's own refusal
        ({"dayofweek": "mon"}, "unknown cron field"),
    ],
)
def test_refusals_say_why(cron, reason) -> None:
    with pytest.raises(CronSyntaxError, match=reason):
        compile_cron(cron)


def test_vixie_day_rule_and_real_time_flag() -> None:
    # Both restricted: either (the Kubernetes docs' example, refused before).
    assert days("0 0 13 * 5", "2027-01-01", 3) == [
        "2027-01-08 00:00",
        "2027-01-13 00:00",
        "2027-01-15 00:00",
    ]
    # A field starting with `*` is unrestricted: both must match.
    assert days("0 0 */2 * 5", "2027-01-01", 2) == ["2027-01-15 00:00", "2027-01-29 00:00"]
    assert compile_cron("*/15 2 * * *").real_time and compile_cron("@hourly").real_time
    assert not compile_cron("0,30 2 * * *").real_time
    assert compile_cron({"second": "*/30"}).real_time and not compile_cron({"hour": 9}).real_time
