"""The cron trigger APScheduler runs, with a controlled clock: its own
`get_next_fire_time(previous, now)` across both Europe/Berlin transitions of 2026, its
pickle (new rows and rows written by older builds), and a real SQLAlchemyJobStore.

Autumn, 2026-10-25: 03:00 CEST -> 02:00 CET, the hour 02:00-02:59 happens twice.
Spring, 2026-03-29: 02:00 CET -> 03:00 CEST, the hour 02:00-02:59 does not exist.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from reconciler.core.dst import WallClockCronTrigger
from reconciler.core.schedule import DstPolicy, Gap, Repeat
from reconciler.core.triggers import build_trigger, next_fire_times
from reconciler.spec.model import JobSpec

BERLIN = ZoneInfo("Europe/Berlin")
AUTUMN_EVE = datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
SPRING_EVE = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(trigger: BaseTrigger, start: datetime, until: datetime) -> list[datetime]:
    """Every fire in [start, until], in UTC, as a scheduler asks: previous = last fire."""
    times: list[datetime] = []
    previous, now = None, start
    while True:
        upcoming = trigger.get_next_fire_time(previous, now)
        if upcoming is None or upcoming.astimezone(UTC) > until.astimezone(UTC):
            return times
        times.append(upcoming.astimezone(UTC))
        previous = now = upcoming


def cron(expression: str, **options) -> WallClockCronTrigger:
    return WallClockCronTrigger(cron=expression, timezone="Europe/Berlin", **options)


def test_stock_cron_trigger_fires_twice_in_autumn_and_skips_a_day_in_spring() -> None:
    """The upstream behaviour the engine replaces (APScheduler issues #606 and #1021),
    kept here so that a new APScheduler that changes it is noticed."""
    stock = CronTrigger.from_crontab("30 2 * * *", timezone=BERLIN)
    autumn = fires(stock, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1))
    assert autumn == [utc("2026-10-25 00:30"), utc("2026-10-25 01:30")]
    midnight = CronTrigger.from_crontab("0 0 * * *", timezone=BERLIN)
    spring = fires(midnight, datetime(2027, 3, 27, 12, tzinfo=BERLIN), utc("2027-03-31 00:00"))
    assert [t.astimezone(BERLIN).day for t in spring][:2] == [28, 30]  # March 29 skipped


def test_midnight_crons_never_skip_the_day_after_a_jump() -> None:
    daily = fires(
        cron("0 0 * * *"), datetime(2027, 3, 27, 12, tzinfo=BERLIN), utc("2027-03-30 12:00")
    )
    assert [t.astimezone(BERLIN).day for t in daily] == [28, 29, 30]
    monthly = WallClockCronTrigger(cron="@monthly", timezone="America/New_York")
    got = fires(monthly, utc("2027-02-15 00:00"), utc("2027-06-02 00:00"))
    assert [t.astimezone(ZoneInfo("America/New_York")).month for t in got] == [3, 4, 5, 6]


def test_a_fixed_time_cron_fires_once_on_the_autumn_transition() -> None:
    autumn = fires(cron("30 2 * * *"), AUTUMN_EVE, AUTUMN_EVE + timedelta(days=3))
    assert autumn == [utc("2026-10-25 00:30"), utc("2026-10-26 01:30"), utc("2026-10-27 01:30")]


def test_a_fixed_time_cron_in_the_spring_gap_runs_once_at_the_jump() -> None:
    spring = fires(cron("30 2 * * *"), SPRING_EVE, SPRING_EVE + timedelta(days=3))
    assert spring == [utc("2026-03-29 01:00"), utc("2026-03-30 00:30"), utc("2026-03-31 00:30")]
    several = fires(cron("0,20,40 2 * * *"), SPRING_EVE, utc("2026-03-29 12:00"))
    assert several == [utc("2026-03-29 01:00")]  # the gap's slots collapse into one run


def test_the_policy_says_otherwise_when_asked() -> None:
    shift = cron("30 2 * * *", dst=DstPolicy(Gap.SHIFT, Repeat.BOTH))
    assert fires(shift, SPRING_EVE, utc("2026-03-29 12:00")) == [utc("2026-03-29 01:30")]
    autumn = fires(shift, AUTUMN_EVE, utc("2026-10-25 12:00"))
    assert autumn == [utc("2026-10-25 00:30"), utc("2026-10-25 01:30")]
    last = cron("30 2 * * *", dst=DstPolicy(Gap.SKIP, Repeat.LAST))
    assert fires(last, SPRING_EVE, utc("2026-03-29 12:00")) == []
    assert fires(last, AUTUMN_EVE, utc("2026-10-25 12:00")) == [utc("2026-10-25 01:30")]


def test_a_wildcard_cron_follows_real_time() -> None:
    """`*/15 * * * *`: 8 fires in the repeated hour, none in the missing one."""
    got = fires(
        cron("*/15 * * * *"), datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN), utc("2026-10-25 02:00")
    )
    assert got == [utc("2026-10-25 00:00") + timedelta(minutes=15 * n) for n in range(9)]
    spring = fires(
        cron("*/15 * * * *"), datetime(2026, 3, 29, 1, 40, tzinfo=BERLIN), utc("2026-03-29 01:45")
    )
    local = [t.astimezone(BERLIN).strftime("%H:%M%z") for t in spring]
    assert local == ["01:45+0100", "03:00+0200", "03:15+0200", "03:30+0200", "03:45+0200"]


def test_fires_after_a_second_occurrence_never_repeat_or_go_back() -> None:
    trigger = cron("*/15 * * * *")
    second = datetime(2026, 10, 25, 2, 45, tzinfo=BERLIN, fold=0)  # 02:45 CEST
    upcoming = [trigger.get_next_fire_time(second, second)]
    for _ in range(4):
        upcoming.append(trigger.get_next_fire_time(upcoming[-1], upcoming[-1]))
    assert [t.astimezone(UTC) for t in upcoming] == [
        utc("2026-10-25 01:00") + timedelta(minutes=15 * n) for n in range(5)
    ]


def test_a_start_between_the_two_occurrences_keeps_the_second() -> None:
    late_start = cron("30 2 * * *", start=utc("2026-10-25 01:00"))
    first = late_start.get_next_fire_time(None, AUTUMN_EVE)
    assert first.astimezone(UTC) == utc("2026-10-25 01:30")


def test_jitter_is_added_after_the_slot_is_chosen() -> None:
    trigger = cron("30 2 * * *", jitter=5)
    got = fires(trigger, AUTUMN_EVE, AUTUMN_EVE + timedelta(days=1))
    assert len(got) == 1
    assert timedelta(0) <= got[0] - utc("2026-10-25 00:30") <= timedelta(seconds=5)


def test_utc_matches_cron_trigger_where_apscheduler_is_right() -> None:
    for expression in ("30 2 * * *", "*/15 * * * *", "0 0 1 * *", "0 9 * * mon-fri"):
        ours = WallClockCronTrigger(cron=expression, timezone="UTC")
        stock = CronTrigger.from_crontab(expression, timezone=UTC)
        start = datetime(2026, 10, 24, tzinfo=UTC)
        end = start + timedelta(days=40)
        assert fires(ours, start, end) == fires(stock, start, end)


def test_pickles_small_with_a_stable_repr() -> None:
    trigger = cron("30 2 * * *", dst=DstPolicy(Gap.SHIFT, Repeat.FIRST))
    restored = pickle.loads(pickle.dumps(trigger))
    assert type(restored) is WallClockCronTrigger
    assert (
        repr(restored)
        == repr(trigger)
        == ("<WallClockCronTrigger (cron='30 2 * * *', timezone='Europe/Berlin', dst=shift/first)>")
    )
    assert fires(restored, AUTUMN_EVE, utc("2026-10-26")) == [utc("2026-10-25 00:30")]


def _old_build_pickle(stock: CronTrigger) -> bytes:
    """What an older build wrote: WallClockCronTrigger was a CronTrigger subclass, so
    its row held CronTrigger's state under this class's name."""

    class OldPickler(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is stock:
                args = (WallClockCronTrigger, object, None)
                return copyreg._reconstructor, args, stock.__getstate__()
            return NotImplemented

    buffer = io.BytesIO()
    OldPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(stock)
    return buffer.getvalue()


def test_rows_of_older_builds_still_load_and_fire_by_the_engine() -> None:
    old = pickle.loads(_old_build_pickle(CronTrigger(hour="0", minute="0", timezone=BERLIN)))
    assert type(old) is WallClockCronTrigger
    # The engine, not APScheduler's arithmetic: March 29 is not skipped.
    got = fires(old, datetime(2027, 3, 27, 12, tzinfo=BERLIN), utc("2027-03-30 12:00"))
    assert [t.astimezone(BERLIN).day for t in got] == [28, 29, 30]
    # Its fingerprint differs from the rebuilt trigger's: the drift check rewrites it once.
    assert repr(old) != repr(cron("0 0 * * *"))
    week = pickle.loads(_old_build_pickle(CronTrigger(day_of_week="0-4", hour=9, timezone=UTC)))
    days = fires(week, utc("2027-01-04 00:00"), utc("2027-01-11 00:00"))  # Mon 4 .. Mon 11
    assert [t.strftime("%a") for t in days] == ["Mon", "Tue", "Wed", "Thu", "Fri"]


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
    assert [t.astimezone(UTC) for t in preview] == [
        utc("2026-10-25 00:30"),
        utc("2026-10-26 01:30"),
    ]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (AUTUMN_EVE, [utc("2026-10-25 00:30"), utc("2026-10-26 01:30")]),
        (SPRING_EVE, [utc("2026-03-29 01:00"), utc("2026-03-30 00:30")]),
    ],
)
def test_through_a_scheduler_on_a_sqlite_job_store(tmp_path, start, expected) -> None:
    """The trigger as APScheduler uses it: pickled into a SQLAlchemyJobStore (SQLite),
    read back, and asked for the run times due by a controlled `now` (what a
    scheduler's catch-up computes: Job._get_run_times)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    store = SQLAlchemyJobStore(url=f"sqlite:///{tmp_path / 'jobs.db'}")
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)  # writes the rows at once, fires nothing
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
