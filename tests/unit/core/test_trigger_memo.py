"""WallClockCronTrigger keeps its last answer: repeated and interleaved questions get
the answers of a trigger that never remembers anything (a fresh one each time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.dst import WallClockCronTrigger

START = datetime(2026, 3, 28, tzinfo=UTC)
moments = st.integers(0, 4 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))
questions = st.lists(st.tuples(st.none() | moments, moments), min_size=1, max_size=20)


def fresh(cron: str) -> WallClockCronTrigger:
    return WallClockCronTrigger(cron=cron, timezone="Europe/Berlin")


def test_the_two_times_of_a_repeated_hour_are_two_questions() -> None:
    """02:30 happens twice in Berlin on 2026-10-25: equal wall clocks, two instants."""
    berlin = ZoneInfo("Europe/Berlin")
    first, second = (datetime(2026, 10, 25, 2, 30, fold=fold, tzinfo=berlin) for fold in (0, 1))
    shared = WallClockCronTrigger(cron="*/15 * * * *", timezone="Europe/Berlin")
    answers = [shared.get_next_fire_time(at, at) for at in (first, second)]
    assert [answer.astimezone(UTC) for answer in answers] == [
        datetime(2026, 10, 25, 0, 45, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 45, tzinfo=UTC),
    ]


@settings(max_examples=100, deadline=None)
@given(cron=st.sampled_from(["0 * * * *", "30 2 * * *", "*/7 * * * *"]), asked=questions)
def test_the_remembered_answer_is_the_fresh_one(cron: str, asked) -> None:
    shared = fresh(cron)
    for previous, now in asked + asked[::-1] + asked:
        remembered = shared.get_next_fire_time(previous, now)
        computed = fresh(cron).get_next_fire_time(previous, now)
        assert remembered is not None and computed is not None
        assert remembered.astimezone(UTC) == computed.astimezone(UTC)
