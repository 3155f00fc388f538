"""Properties of the schedule engine over arbitrary crons, zones, policies and starts:

- fires are strictly increasing instants;
- no matching wall time the policy keeps is ever skipped (checked against cronsim's
  naive matches placed by the oracle's independent rule, tests/unit/core/test_cron_oracle);
- preview == daemon: the plan's preview (`next_fire_times`) equals what APScheduler gets
  from the trigger it unpickles from an `apscheduler_jobs` row, asked as its scheduler
  asks (`get_next_fire_time(previous, now)` after each fire).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.schedule import CronSchedule, DstPolicy, Gap, Repeat
from reconciler.core.triggers import build_trigger, next_fire_times
from reconciler.spec.cron import compile_cron
from reconciler.spec.model import JobSpec
from reconciler.store.job_state import load_state, pickle_state

from .test_cron_oracle import (
    ZONES,
    default_policy,
    is_real_time,
    naive_matches,
    place,
    transitions,
)

JUMPS = {zone: transitions(zone, range(2026, 2031)) for zone in ZONES}


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        st.integers(2, max(2, (high - low) // 2)).map(lambda k: f"*/{k}"),
        number.map(str),
        st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}"),
        st.lists(number, min_size=2, max_size=4, unique=True).map(lambda v: ",".join(map(str, v))),
    )


crons = st.builds(
    lambda second, minute, hour, dom, month, dow, six: " ".join(
        ([second] if six else []) + [minute, hour, dom, month, dow]
    ),
    _field(0, 59),
    _field(0, 59),
    _field(0, 5),  # the hours where every transition of these zones happens
    st.one_of(st.just("*"), st.just("*"), _field(1, 28), st.just("L")),
    st.one_of(st.just("*"), st.just("*"), _field(1, 12)),
    st.one_of(st.just("*"), st.just("*"), _field(0, 7), st.just("5L"), st.just("0#1")),
    st.booleans(),
)
policies = st.one_of(st.none(), st.builds(DstPolicy, st.sampled_from(Gap), st.sampled_from(Repeat)))


@st.composite
def starts(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(ZONES))
    jumps = JUMPS[zone]
    if jumps and draw(st.booleans()):
        base = draw(st.sampled_from(jumps))
        return zone, base + timedelta(seconds=draw(st.integers(-7200, 7200)))
    moment = draw(st.datetimes(datetime(2026, 1, 1), datetime(2030, 12, 31)))
    return zone, moment.replace(tzinfo=UTC)


pytestmark = pytest.mark.slow
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(cron=crons, where=starts(), policy=policies)
def test_fires_increase_and_skip_no_kept_wall_time(cron, where, policy) -> None:
    zone, start = where
    pattern = compile_cron(cron)
    fires = CronSchedule(pattern, zone=zone, policy=policy).fires(start, 12)
    instants = [fire.at.astimezone(UTC) for fire in fires]
    assert instants == sorted(set(instants))
    assert all(moment > start for moment in instants)
    if not instants:
        return
    # Every kept placement of every matching wall time up to the last fire is a fire.
    effective = policy or default_policy(is_real_time(*cron.split()[-5:-3]))
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    kept: set[datetime] = set()
    for wall in naive_matches(cron, start.replace(tzinfo=None) - timedelta(hours=15)):
        if wall.replace(tzinfo=UTC) - timedelta(hours=14) > instants[-1]:
            break
        kept.update(u for u in place(wall, tz, effective) if start < u <= instants[-1])
    assert kept == set(instants)


@PROPERTY_SETTINGS
@given(cron=crons, where=starts(), gap=st.sampled_from([None, *Gap]))
def test_preview_equals_what_the_daemon_fires(cron, where, gap) -> None:
    zone, start = where
    document = {
        "name": "job",
        "task": "reconciler.tasks.noop",
        "schedule": {"cron": cron},
        "timezone": zone,
    }
    if gap is not None:
        document["dst"] = {"gap": gap.value}
    spec = JobSpec.model_validate(document)
    preview = next_fire_times(spec, after=start, count=8)
    # The daemon: the trigger as pickled into apscheduler_jobs and read back, asked for
    # the first fire from `now`, then from each previous fire, as APScheduler asks.
    state = {"trigger": build_trigger(spec), "next_run_time": None}
    trigger = load_state(pickle_state(state))["trigger"]
    fired: list[datetime] = []
    moment = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    while moment is not None and len(fired) < 8:
        fired.append(moment)
        moment = trigger.get_next_fire_time(moment, moment)
    assert [t.astimezone(UTC) for t in fired] == [t.astimezone(UTC) for t in preview]
