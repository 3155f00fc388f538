"""The schedule engine against an INDEPENDENT implementation, around every DST transition
of 2026-2030 in the zones the issue names.

The oracle is two parts, neither from our engine:
- MATCHING: cronsim (a separate Vixie-cron implementation) for cron strings, and
  APScheduler's own CronTrigger in UTC for field maps (their meaning IS APScheduler's),
  both run on a NAIVE clock, where no DST exists (cronsim's own DST iteration misses
  slots in 30/45-minute DST zones; APScheduler's adds 24 h across a 23 h day).
- PLACEMENT: `place` below, written from the README's rule with nothing but zoneinfo's
  fold semantics (PEP 495): a wall time that round-trips with fold 0 and 1 to two
  instants is repeated, one that round-trips with neither is in the gap.

Every case compares the next N fires; the test fails on any disagreement and prints the
first ones. The README's DST policy is the only intended difference from cronsim's raw
naive matches, and it is implemented here independently.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from cronsim import CronSim

from reconciler.core.schedule import CronSchedule, DstPolicy, Gap, Repeat
from reconciler.spec.cron import compile_cron

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
)
# crontab(5)'s macros, written out here rather than taken from our parser.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRONS: tuple[str, ...] = (
    "0 0 * * *", "30 2 * * *", "0 2 * * *", "15 1 * * *", "45 1 * * *", "0,30 2 * * *",
    "*/15 2 * * *", "*/15 * * * *", "0 * * * *", "30 * * * *", "*/5 * * * *", "0 */2 * * *",
    "45 2 * * *", "0 3 * * *", "59 1 * * *", "0 9 * * 1-5", "0 9 * * MON-FRI", "0 0 1 * *",
    "0 0 13 * 5", "0 0 1,15 * *", "0 0 * * 0", "0 0 * * 7", "0 12 * * SUN-SAT",
    "0 8 * * sun-thu", "5 4 * * sun", "0 0 L * *", "0 0 LW * *", "0 9 * * 5L",
    "0 9 * * FRI#3", "0 2 * * 1#1", "30 1-3 * * *", "0 22 * * 1-5", "23 0-20/2 * * *",
    "0 0 29 2 *", "0 2 * 3,4,9,10 0", "0,15,30,45 0-3 * * *", "20/10 2 * * *",
    "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
    "*/30 * * * * *", "0 30 2 * * *", "15 */20 1-3 * * *", "0 0 0 1 1 *", "*/10 0 2 * * *",
    "30 45 2 * * *",
)  # fmt: skip
FIELD_MAPS: tuple[dict[str, str | int], ...] = (
    {"hour": 2, "minute": 30},
    {"day_of_week": "0-4", "hour": 9},
    {"day_of_week": "sat,sun", "hour": "2", "minute": "*/20"},
    {"day": "last", "hour": 0},
    {"day": "last fri", "hour": 2},
    {"day": "2nd mon", "hour": 2, "minute": 30},
    {"week": "*/2", "day_of_week": "sun", "hour": 2},
    {"second": "*/30", "minute": "*/20"},
    {"month": "mar,apr,sep,oct", "day": "1-7", "day_of_week": "sun", "hour": "1-3"},
    {"minute": 45},
)
POLICIES = [DstPolicy(gap, repeat) for gap in Gap for repeat in Repeat]
FIRES_PER_CASE = 4


# ---- the independent placement rule ---------------------------------------------------


def is_real_time(minute: str, hour: str) -> bool:
    """The README: a cron whose minute or hour field starts with `*` follows real time."""
    return minute.startswith("*") or hour.startswith("*")


def default_policy(real_time: bool) -> DstPolicy:
    return DstPolicy(Gap.SKIP, Repeat.BOTH) if real_time else DstPolicy(Gap.NEXT, Repeat.FIRST)


def place(wall: datetime, zone: ZoneInfo, policy: DstPolicy) -> list[datetime]:
    """The UTC instants at which naive `wall` fires in `zone` under `policy`."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    u0, u1 = first.astimezone(UTC), second.astimezone(UTC)
    if u0 == u1:
        return [u0]
    exists = u0.astimezone(zone).replace(tzinfo=None) == wall
    if exists:  # repeated: fold 0 is the earlier occurrence
        return {Repeat.FIRST: [u0], Repeat.LAST: [u1], Repeat.BOTH: [u0, u1]}[policy.repeat]
    # In the gap. PEP 495: fold=0 reads it with the offset from before the jump, i.e.
    # the instant it "would have been" (shift); the jump itself lies in (u1, u0].
    if policy.gap is Gap.SKIP:
        return []
    if policy.gap is Gap.SHIFT:
        return [u0]
    return [jump_between(u1, u0, zone)]


def jump_between(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (low, high] at the offset `high` has (bisection, 1 s)."""
    target = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = (low + (high - low) / 2).replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high


# ---- naive matching by the oracles ------------------------------------------------------


def naive_matches(cron: str | dict[str, str | int], after: datetime) -> Iterator[datetime]:
    """Naive wall times strictly after naive `after`, by cronsim or APScheduler (UTC)."""
    if isinstance(cron, str):
        yield from CronSim(MACROS.get(cron, cron), after)
        return
    trigger = CronTrigger(timezone=UTC, **cron)
    moment = after.replace(tzinfo=UTC) + timedelta(seconds=1)
    previous = None
    while True:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            return
        yield fire.replace(tzinfo=None)
        previous = moment = fire


def oracle_fires(
    cron: str | dict[str, str | int], zone_name: str, policy: DstPolicy, start: datetime, count: int
) -> list[datetime]:
    zone = ZoneInfo(zone_name)
    offsets = [(start + timedelta(hours=h)).astimezone(zone).utcoffset() for h in range(-26, 27)]
    low, high = min(offsets), max(offsets)
    # A wall time earlier than `start`'s own can still fire after it (a shifted gap slot,
    # a second occurrence): begin at the earliest wall any instant after `start` has.
    walls = naive_matches(cron, start.replace(tzinfo=None) + low - timedelta(seconds=1))
    found: set[datetime] = set()
    for wall in walls:
        found.update(u for u in place(wall, zone, policy) if u > start)
        kept = sorted(found)[:count]
        # Later walls only give instants >= wall - high: stop once none can come earlier.
        if len(kept) == count and wall.replace(tzinfo=UTC) - high > kept[-1]:
            return kept
        if wall.year > start.year + 30:
            break
    return sorted(found)[:count]


# ---- cases ------------------------------------------------------------------------------


def transitions(zone_name: str, years: range) -> list[datetime]:
    """UTC instants where the zone's offset changes, found by hourly sampling."""
    zone = ZoneInfo(zone_name)
    found = []
    moment = datetime(years.start, 1, 1, tzinfo=UTC)
    end = datetime(years.stop, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        later = moment + timedelta(hours=1)
        if later.astimezone(zone).utcoffset() != offset:
            found.append(jump_between(moment, later, zone))
            offset = later.astimezone(zone).utcoffset()
        moment = later
    return found


def starts_for(zone_name: str) -> list[datetime]:
    jumps = transitions(zone_name, range(2026, 2031))
    if not jumps:  # no DST (UTC, Kolkata, Sao Paulo since 2019): month starts and odd hours
        return [
            datetime(y, m, 1, 1, 30, tzinfo=UTC) for y in range(2026, 2031) for m in (1, 3, 10, 12)
        ]
    around = (-26, -3, -1.5, -0.75, -0.25, 0, 0.25, 0.5, 1, 2.5)
    return [jump + timedelta(hours=h) for jump in jumps for h in around]


def all_cases() -> list[tuple[str | dict[str, str | int], str, DstPolicy | None, datetime]]:
    rng = random.Random(20261201)
    schedules: list[str | dict[str, str | int]] = [*CRONS, *FIELD_MAPS]
    cases = []
    for zone in ZONES:
        for start in starts_for(zone):
            for cron in rng.sample(schedules, 8):
                policy = rng.choice(POLICIES) if rng.random() < 0.4 else None
                cases.append((cron, zone, policy, start))
    return cases


def effective_minute_hour(cron: str | dict[str, str | int]) -> tuple[str, str]:
    if isinstance(cron, dict):  # APScheduler: fields below the smallest given are 0
        trigger = CronTrigger(timezone=UTC, **cron)
        fields = {f.name: str(f) for f in trigger.fields}
        return fields["minute"], fields["hour"]
    parts = MACROS.get(cron, cron).split()
    if len(parts) == 6:
        parts = parts[1:]
    return parts[0], parts[1]


CASES = all_cases()


@pytest.mark.slow
def test_engine_agrees_with_cronsim_and_apscheduler_on_a_naive_clock() -> None:
    assert len(CASES) >= 2000
    disagreements = []
    for cron, zone, policy, start in CASES:
        effective = policy or default_policy(is_real_time(*effective_minute_hour(cron)))
        expected = oracle_fires(cron, zone, effective, start, FIRES_PER_CASE)
        pattern = compile_cron(cron)
        ours = CronSchedule(pattern, zone=zone, policy=policy).fires(start, FIRES_PER_CASE)
        got = [fire.at.astimezone(UTC) for fire in ours]
        if got != expected:
            disagreements.append((cron, zone, policy, start.isoformat(), got, expected))
    shown = "\n".join(map(str, disagreements[:10]))
    assert not disagreements, f"{len(disagreements)} of {len(CASES)} disagree:\n{shown}"


def test_the_cases_cover_every_zone_transition_and_kind() -> None:
    zones = {zone for _, zone, _, _ in CASES}
    assert zones == set(ZONES)
    kinds = {
        "macro" if isinstance(c, str) and c.startswith("@") else
        "map" if isinstance(c, dict) else
        "six" if len(c.split()) == 6 else "five"
        for c, _, _, _ in CASES
    }  # fmt: skip
    assert kinds == {"macro", "map", "six", "five"}
    assert len(transitions("Europe/Berlin", range(2026, 2031))) == 10
    assert len(transitions("Australia/Lord_Howe", range(2026, 2031))) == 10
