"""WallClockCronTrigger keeps its last answer: repeated and interleaved questions get
the answers of a trigger that never remembers anything (a fresh one each time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.dst import WallClockCronTrigger

START = datetime(2026, 3, 28, tzinfo=UTC)
moments = st.integers(0, 4 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))
questions = st.lists(st.tuples(st.none() | moments, moments), min_size=1, max_size=20)


def fresh(cron: str) -> WallClockCronTrigger:
    return WallClockCronTrigger(cron=cron, timezone="Europe/Berlin")


@settings(max_examples=100, deadline=None)
@given(cron=st.sampled_from(["0 * * * *", "30 2 * * *", "*/7 * * * *"]), asked=questions)
def test_the_remembered_answer_is_the_fresh_one(cron: str, asked) -> None:
    shared = fresh(cron)
    for previous, now in asked + asked[::-1] + asked:
        assert shared.get_next_fire_time(previous, now) == fresh(cron).get_next_fire_time(
            previous, now
        )
