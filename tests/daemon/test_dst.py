"""DST with a controlled clock: the trigger's own `get_next_fire_time(previous, now)`
across both Europe/Berlin transitions of 2026 (no services; the clock is the argument).

Autumn, 2026-10-25: 03:00 CEST -> 02:00 CET, the hour 02:00-02:59 happens twice.
Spring, 2026-03-29: 02:00 CET -> 03:00 CEST, the hour 02:00-02:59 does not exist.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from reconciler.core.dst import WallClockCronTrigger, earlier_occurrence
from reconciler.core.triggers import build_trigger, next_fire_times
from reconciler.spec.model import JobSpec

BERLIN = ZoneInfo("Europe/Berlin")
AUTUMN_EVE = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
SPRING_EVE = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(trigger: CronTrigger, start: datetime, until: datetime) -> list[datetime]:
    """Every fire in [start, until], in UTC, as a scheduler asks: previous = last fire.
    (Compared in UTC: two datetimes of one zone compare by wall time, ignoring fold, and
    an ambiguous time never equals one of another zone: PEP 495.)"""
    times: list[datetime] = []
    previous, now = None, start
    while True:
        upcoming = trigger.get_next_fire_time(previous, now)
        if upcoming is None or upcoming.astimezone(UTC) > until.astimezone(UTC):
            return times
        times.append(upcoming.astimezone(UTC))
        previous = now = upcoming


def cron(expression: str, cls: type[CronTrigger] = WallClockCronTrigger, **options) -> CronTrigger:
    return cls.from_crontab(expression, timezone=BERLIN, **options) if " " in expression else None


def test_stock_cron_trigger_fires_twice_in_autumn_and_once_in_spring() -> None:
    """The upstream behaviour (FACTS), kept here so a new APScheduler that changes it
    is noticed."""
    stock = cron("30 2 * * *", CronTrigger)
    autumn = fires(stock, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1))
    assert autumn == [utc("2026-10-25 00:30"), utc("2026-10-25 01:30")]
    spring = fires(stock, SPRING_EVE, SPRING_EVE + timedelta(days=1))
    assert spring == [utc("2026-03-29 01:30")]  # 03:30 CEST


def test_a_fixed_hour_cron_fires_once_on_the_autumn_transition() -> None:
    trigger = cron("30 2 * * *")
    autumn = fires(trigger, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=3))
    # 02:30 CEST only (00:30 UTC); the repeated 02:30 CET is skipped; then daily 02:30 CET.
    assert autumn == [utc("2026-10-25 00:30"), utc("2026-10-26 01:30"), utc("2026-10-27 01:30")]
    assert [t.astimezone(BERLIN).hour for t in autumn] == [2, 2, 2]


def test_a_fixed_hour_cron_fires_once_at_0330_on_the_spring_transition() -> None:
    trigger = cron("30 2 * * *")
    spring = fires(trigger, SPRING_EVE, SPRING_EVE + timedelta(days=3))
    assert spring == [utc("2026-03-29 01:30"), utc("2026-03-30 00:30"), utc("2026-03-31 00:30")]
    first = spring[0].astimezone(BERLIN)
    assert (first.hour, first.minute, first.utcoffset()) == (3, 30, timedelta(hours=2))
    # ...and the trigger reports it on the zone's clock, not as the impossible 02:30+01:00.
    upcoming = trigger.get_next_fire_time(None, SPRING_EVE)
    assert (upcoming.hour, upcoming.utcoffset()) == (3, timedelta(hours=2))


def test_a_wildcard_hour_cron_keeps_firing_through_the_repeated_hour() -> None:
    """Real time passes: `*/15 * * * *` fires every 15 minutes, 8 times 02:00-02:59."""
    trigger = cron("*/15 * * * *")
    start = datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN)
    got = fires(trigger, start, utc("2026-10-25 02:00"))
    expected = [utc("2026-10-25 00:00") + timedelta(minutes=15 * n) for n in range(9)]
    assert got == expected  # 02:00 CEST ... 03:00 CET, evenly spaced in real time
    assert len([t for t in got if t.astimezone(BERLIN).hour == 2]) == 8


def test_a_wildcard_hour_cron_has_no_slots_in_the_missing_spring_hour() -> None:
    trigger = cron("*/15 * * * *")
    start = datetime(2026, 3, 29, 1, 40, tzinfo=BERLIN)
    until = utc("2026-03-29 01:45")
    got = [t.astimezone(BERLIN).strftime("%H:%M%z") for t in fires(trigger, start, until)]
    assert got == ["01:45+0100", "03:00+0200", "03:15+0200", "03:30+0200", "03:45+0200"]


def test_fixed_hour_with_wildcard_minutes_runs_the_wall_hour_once() -> None:
    trigger = cron("*/15 2 * * *")
    got = fires(trigger, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1, hours=6))
    assert got == [utc("2026-10-25 00:00") + timedelta(minutes=15 * n) for n in range(4)]


def test_seconds_crons_follow_the_same_rule() -> None:
    every_second_of_2 = WallClockCronTrigger(hour="2", minute="30", second="*/20", timezone=BERLIN)
    got = fires(every_second_of_2, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1))
    assert got == [utc("2026-10-25 00:30:00") + timedelta(seconds=20 * n) for n in range(3)]
    every_20s = WallClockCronTrigger(second="*/20", timezone=BERLIN)
    start = datetime(2026, 10, 25, 2, 59, 40, tzinfo=BERLIN, fold=0)
    got = fires(every_20s, start, utc("2026-10-25 01:00:40"))
    assert got == [utc("2026-10-25 00:59:40") + timedelta(seconds=20 * n) for n in range(4)]


def test_the_repeat_runs_when_the_first_occurrence_was_before_the_trigger_existed() -> None:
    trigger = cron("30 2 * * *")
    # Added (no previous fire) during the repeated hour, after 02:30 CEST had passed:
    added = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1)
    assert trigger.get_next_fire_time(None, added).astimezone(UTC) == utc("2026-10-25 01:30")
    # A start date between the two occurrences: the first was never a slot.
    late_start = WallClockCronTrigger(
        hour="2", minute="30", timezone=BERLIN, start_date=utc("2026-10-25 01:00")
    )
    first = late_start.get_next_fire_time(None, AUTUMN_EVE)
    assert first.astimezone(UTC) == utc("2026-10-25 01:30")
    # Added before the transition: the normal rule.
    assert fires(trigger, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1)) == [utc("2026-10-25 00:30")]


def test_jitter_is_applied_after_the_skip() -> None:
    trigger = WallClockCronTrigger(hour="2", minute="30", timezone=BERLIN, jitter=5)
    got = fires(trigger, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1))
    assert len(got) == 1
    assert timedelta(0) <= got[0] - utc("2026-10-25 00:30") <= timedelta(seconds=5)


def test_utc_behaves_exactly_like_cron_trigger() -> None:
    for expression in ("30 2 * * *", "*/15 * * * *", "0 0 1 * *"):
        ours = WallClockCronTrigger.from_crontab(expression, timezone=UTC)
        stock = CronTrigger.from_crontab(expression, timezone=UTC)
        start = datetime(2026, 10, 24, tzinfo=UTC)
        assert fires(ours, start, start + timedelta(days=40)) == fires(
            stock, start, start + timedelta(days=40)
        )


def test_earlier_occurrence_tells_the_repeat_from_the_gap() -> None:
    second = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)
    assert earlier_occurrence(second, BERLIN) == utc("2026-10-25 00:30")
    assert earlier_occurrence(second.replace(fold=0), BERLIN) is None
    gap = datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN)
    assert earlier_occurrence(gap, BERLIN) is None
    assert earlier_occurrence(utc("2026-07-01 12:00"), BERLIN) is None


def test_pickles_with_a_stable_repr_and_same_behaviour() -> None:
    trigger = cron("30 2 * * *")
    trigger.get_next_fire_time(None, AUTUMN_EVE)  # builds the lazy helper: never pickled
    state = pickle.dumps(trigger)
    assert b"_plain" not in state
    restored = pickle.loads(state)
    assert type(restored) is WallClockCronTrigger
    assert repr(restored) == repr(trigger) == repr(cron("30 2 * * *"))
    assert repr(trigger) == (
        "<WallClockCronTrigger (month='*', day='*', day_of_week='*', hour='2', "
        "minute='30', timezone='Europe/Berlin')>"
    )
    assert fires(restored, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1)) == [utc("2026-10-25 00:30")]


def test_build_trigger_uses_it_for_cron_jobs_and_previews_agree() -> None:
    spec = JobSpec.model_validate(
        {
            "name": "nightly",
            "task": "reconciler.tasks.noop",
            "schedule": {"cron": "30 2 * * *"},
            "timezone": "Europe/Berlin",
        }
    )
    assert isinstance(build_trigger(spec), WallClockCronTrigger)
    preview = next_fire_times(spec, after=AUTUMN_EVE.astimezone(UTC), count=2)
    expected = [utc("2026-10-25 00:30"), utc("2026-10-26 01:30")]
    assert [t.astimezone(UTC) for t in preview] == expected


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (AUTUMN_EVE, [utc("2026-10-25 00:30"), utc("2026-10-26 01:30")]),
        (SPRING_EVE, [utc("2026-03-29 01:30"), utc("2026-03-30 00:30")]),
    ],
)
def test_through_a_scheduler_on_a_sqlite_job_store(tmp_path, start, expected) -> None:
    """The trigger as APScheduler uses it: pickled into a SQLAlchemyJobStore (SQLite),
    read back, and asked for the run times due by a controlled `now` two days later
    (what a scheduler's catch-up computes: Job._get_run_times)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    store = SQLAlchemyJobStore(url=f"sqlite:///{tmp_path / 'jobs.db'}")
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)  # writes the rows, fires nothing (FACTS)
    try:
        trigger = cron("30 2 * * *")
        scheduler.add_job(
            "reconciler.dispatch.fire:fire_job",
            trigger=trigger,
            id="nightly",
            kwargs={"job": "nightly", "payload": {}},
            next_run_time=trigger.get_next_fire_time(None, start),
        )
        job = store.lookup_job("nightly")  # unpickled from the table
        assert type(job.trigger) is WallClockCronTrigger
        due = job._get_run_times(start + timedelta(days=1, hours=15))
        assert [t.astimezone(UTC) for t in due] == expected
    finally:
        scheduler.shutdown(wait=False)
