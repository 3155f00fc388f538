""" "Why didn't it fire?": every slot a schedule defines in a window, and its fate. Pure.

`slot_times` is the ONE place that enumerates a schedule's slots: a narrow seam over the
trigger interface (`build_trigger(...).get_next_fire_time`), so that moving to another
schedule engine changes this function only.

A slot's fate comes from its ledger row when there is one (the worker and the dispatcher
record every fire, miss and skip with a reason), else from what was true at that time:
the job did not exist yet, was paused (job events), was outside its start/end, is not
due yet, or nothing recorded it at all (`absent`: no leader was firing).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.dst import WallClockCronTrigger
from reconciler.core.moments import as_utc, rfc3339
from reconciler.core.schedule import CronSchedule, Gap, Repeat, next_wall
from reconciler.core.triggers import TriggerMemory, build_trigger
from reconciler.core.vocabulary import (
    FINAL_RUN_STATUSES,
    UNFINISHED_RUN_STATUSES,
    Action,
    Fate,
    JobStatus,
    MissReason,
    RunReason,
    RunStatus,
)
from reconciler.core.zones import Segment
from reconciler.spec.model import JobSpec

_EPSILON = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
# How far back `nearest_slots` looks for the slot before a time (then it gives up).
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=400))


def slot_times(
    spec: JobSpec,
    *,
    after: datetime,
    until: datetime,
    limit: int,
    triggers: TriggerMemory | None = None,
) -> tuple[list[datetime], bool]:
    """The slots in (after, until], oldest first, at most `limit`; and whether more
    follow. Slots after the spec's `end` are included (their fate says so)."""
    trigger = build_trigger(_open_ended(spec), with_jitter=False, memory=triggers)
    # Everything in UTC: two datetimes of the SAME zone compare (and add) by wall time
    # and ignore `fold`, so 02:00 CET (a second occurrence) would look earlier than
    # 02:30 CEST on an autumn night and a `repeat: both` slot would be dropped.
    after, until = _utc(after), _utc(until)
    found: list[datetime] = []
    previous: datetime | None = None
    moment = after + _EPSILON
    while True:
        fired = trigger.get_next_fire_time(previous, moment)
        if fired is None:
            return found, False
        upcoming = _utc(fired)
        if upcoming > until:
            return found, False
        if len(found) == limit:
            return found, True
        if upcoming > after and (not found or upcoming > found[-1]):
            found.append(upcoming)
        previous, moment = upcoming, upcoming + _EPSILON


def _utc(moment: datetime) -> datetime:
    found = as_utc(moment)
    assert found is not None
    return found


@dataclass(frozen=True, kw_only=True)
class DstSkip:
    """A wall time the pattern names that the job's DST policy does not run: `slot` is
    the instant it would have had (a gap wall time on the offset before the jump; a
    repeated one at the occurrence dropped), `reason` names the policy."""

    slot: datetime
    reason: str


def dst_skips(spec: JobSpec, *, after: datetime, until: datetime) -> list[DstSkip]:
    """The wall times in (after, until] that the DST policy drops, oldest first: they
    are no slot (`slot_times` never lists them), yet `explain` must say why nothing ran.
    Only cron schedules have them. Walks the zone's offset changes near the window."""
    trigger = build_trigger(_open_ended(spec), with_jitter=False)
    if not isinstance(trigger, WallClockCronTrigger):
        return []
    schedule = trigger.schedule
    low, high = _utc(after).replace(tzinfo=None), _utc(until).replace(tzinfo=None)
    found: list[tuple[datetime, str]] = []
    # A dropped instant is within a day of its offset change (UTC offsets < 1 day).
    cursor = low - _DAY
    while cursor <= high + _DAY:
        segment = schedule.clock.segment(cursor)
        if segment.start >= low - _DAY:
            found += _dropped_at(schedule, segment)
        if segment.end <= cursor:
            break
        cursor = segment.end
    return [
        DstSkip(slot=moment.replace(tzinfo=UTC), reason=reason)
        for moment, reason in sorted(found)
        if low < moment <= high
    ]


def _dropped_at(schedule: CronSchedule, segment: Segment) -> list[tuple[datetime, str]]:
    """The (naive UTC instant, reason) of the wall times dropped at the offset change
    that starts `segment`. Mirrors CronSchedule's placement rules (core.schedule)."""
    policy, zone = schedule.policy, schedule.clock.name
    jump = segment.offset - segment.before
    dropped: list[tuple[datetime, str]] = []
    if jump > timedelta(0):  # spring gap: walls [start + before, start + offset)
        gap_end = segment.start + segment.offset
        wall = next_wall(schedule.pattern, segment.start + segment.before, gap_end)
        first = True
        while wall is not None:
            text = f"{wall:%Y-%m-%d %H:%M:%S} does not exist in {zone} (clocks jump forward)"
            if policy.gap is Gap.SKIP:
                dropped.append((wall - segment.before, f"dst gap: skip: {text}"))
            elif policy.gap is Gap.NEXT and not first:
                text += "; folded into the one run at the jump"
                dropped.append((wall - segment.before, f"dst gap: next: {text}"))
            first = False
            wall = next_wall(schedule.pattern, wall + _SECOND, gap_end)
    elif jump < timedelta(0):  # autumn repeat: walls [start + offset, start + before) twice
        repeat_end = segment.start + segment.before
        wall = next_wall(schedule.pattern, segment.start + segment.offset, repeat_end)
        while wall is not None:
            first_at, second_at = wall - segment.before, wall - segment.offset
            text = f"{wall:%Y-%m-%d %H:%M:%S}, which happens twice in {zone} (clocks go back)"
            before_start = schedule.start is not None and first_at < schedule.start
            if policy.repeat is Repeat.FIRST and not before_start:
                dropped.append((second_at, f"dst repeat: first: second occurrence of {text}"))
            elif policy.repeat is Repeat.LAST:
                dropped.append((first_at, f"dst repeat: last: first occurrence of {text}"))
            wall = next_wall(schedule.pattern, wall + _SECOND, repeat_end)
    return dropped


def _open_ended(spec: JobSpec) -> JobSpec:
    return spec if spec.end is None else spec.model_copy(update={"end": None})


def nearest_slots(spec: JobSpec, moment: datetime) -> tuple[datetime | None, datetime | None]:
    """The last slot at or before `moment` and the first one after it."""
    following, _ = slot_times(spec, after=moment, until=moment + timedelta(days=3660), limit=1)
    for lookback in _LOOKBACK:
        before, _ = slot_times(spec, after=moment - lookback, until=moment, limit=100_000)
        if before:
            return before[-1], following[0] if following else None
    return None, following[0] if following else None


@dataclass(frozen=True, kw_only=True)
class JobHistory:
    """What was true of a job over time: when it entered the inventory, its status
    changes (job events, oldest first) and its status now."""

    created_at: datetime
    status_now: str
    events: Sequence[Mapping[str, Any]] = ()

    def status_at(self, moment: datetime) -> str:
        times = [as_utc(event["at"]) for event in self.events]
        index = bisect_right(times, moment)
        if index > 0:
            return str(self.events[index - 1]["status"] or "removed")
        if self.events:  # before the first change: its opposite
            first = self.events[0]
            if first["action"] == Action.RESUME:
                return JobStatus.PAUSED
            if first["action"] == Action.PAUSE:
                return JobStatus.ACTIVE
        return self.status_now


def explain_slots(
    spec: JobSpec,
    slots: Sequence[datetime],
    runs: Sequence[Mapping[str, Any]],
    *,
    history: JobHistory,
    now: datetime,
    dst: Sequence[DstSkip] = (),
) -> list[dict[str, Any]]:
    """Each slot with its fate and a reason for people, oldest first. Ledger rows in the
    window that are no slot of the current schedule (an earlier schedule, a run started by
    hand) are listed too, marked so. Wall times the DST policy drops (`dst_skips`) are
    listed `skipped` with the policy as reason; a run is never matched to one of them."""
    by_slot = {as_utc(run["scheduled_time"]): run for run in runs}
    # First, so that the sort (stable) lists a dropped wall time before a slot at the
    # same instant (a real-time cron's gap walls: 02:00 does not exist, 03:00 runs).
    explained = [_entry(skip.slot, {"fate": Fate.SKIPPED, "reason": skip.reason}) for skip in dst]
    for slot in slots:
        run = by_slot.pop(as_utc(slot), None)
        explained.append(_explain(spec, as_utc(slot), run, history, now))
    for moment, run in by_slot.items():
        entry = _from_run(run, spec)
        entry["reason"] += " (not a slot of the current schedule)"
        explained.append(_entry(moment, entry))
    return sorted(explained, key=lambda entry: entry["slot"])


def _entry(slot: datetime, found: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a slot, in the order people read them."""
    return {
        "slot": slot,
        "fate": found["fate"],
        "reason": found["reason"],
        "run_id": found.get("run_id"),
        "outcome": found.get("outcome"),
    }


def _explain(
    spec: JobSpec,
    slot: datetime,
    run: Mapping[str, Any] | None,
    history: JobHistory,
    now: datetime,
) -> dict[str, Any]:
    if run is not None:
        return _entry(slot, _from_run(run, spec))
    fate, reason = _without_run(spec, slot, history, now)
    return _entry(slot, {"fate": fate, "reason": reason})


def _without_run(
    spec: JobSpec, slot: datetime, history: JobHistory, now: datetime
) -> tuple[Fate, str]:
    if slot > now:
        return Fate.NOT_DUE, "in the future"
    created = as_utc(history.created_at)
    assert created is not None
    if slot < created:
        return Fate.SKIPPED, f"before the job was added ({rfc3339(created)})"
    if spec.start is not None and slot < spec.zoned(spec.start):
        return Fate.SKIPPED, f"before the job's start ({rfc3339(spec.zoned(spec.start))})"
    if spec.end is not None and slot > spec.zoned(spec.end):
        return Fate.SKIPPED, f"after the job's end ({rfc3339(spec.zoned(spec.end))})"
    status = history.status_at(slot)
    if status == JobStatus.PAUSED:
        return Fate.SKIPPED, "paused: the job was paused then (no fire while paused)"
    if status == "removed":
        return Fate.SKIPPED, "the job was removed then"
    grace = timedelta(seconds=float(spec.misfire_grace_seconds))
    if now - slot <= grace:
        return Fate.NOT_DUE, "due now: within its misfire grace, it may still fire"
    return (
        Fate.ABSENT,
        "nothing fired or recorded this slot: no leader was running the scheduler then, "
        "or its record was lost",
    )


def _from_run(run: Mapping[str, Any], spec: JobSpec) -> dict[str, Any]:
    status, why = run["status"], run.get("reason")
    entry: dict[str, Any] = {"run_id": run["id"], "outcome": status}
    lateness = run.get("lateness_seconds")
    late = f", {lateness:.3f} s late" if lateness is not None else ""
    if status in FINAL_RUN_STATUSES:
        entry.update(fate=Fate.RAN, reason=f"{status}{late}")
    elif status in UNFINISHED_RUN_STATUSES:
        entry.update(fate=Fate.RAN, reason=f"{status} (not finished){late}")
    elif status == RunStatus.MISSED and why == RunReason.COALESCED:
        # Not "into a later slot's run": that newest slot may have been missed too.
        entry.update(
            fate=Fate.COALESCED,
            reason="coalesced: of the slots due together, only the newest was kept",
        )
    elif status == RunStatus.MISSED:
        grace = spec.misfire_grace_seconds
        gap = f" (found {lateness:.0f} s late)" if lateness is not None else ""
        texts: dict[str, str] = {
            RunReason.MISFIRE: f"beyond its misfire grace of {grace} s{gap}: the daemon was down "
            "or no leader was firing",
            RunReason.CATCH_UP_LIMIT: "beyond the catch-up limit after downtime",
            MissReason.EXPIRED: "expired before it could be published",
        }
        text = texts.get(str(why), f"missed ({why})")
        entry.update(fate=Fate.MISSED, reason=text)
    elif status == RunStatus.EXPIRED:
        entry.update(fate=Fate.MISSED, reason="expired before it could be published")
    else:  # skipped
        texts = {
            RunReason.OVERLAP: f"overlap: {spec.max_concurrent_runs} run(s) still running "
            "(max_concurrent_runs)",
            "duplicate": "a duplicate fire of a slot that already ran",
        }
        text = texts.get(str(why), f"skipped ({why})")
        entry.update(fate=Fate.SKIPPED, reason=text)
    return entry


@dataclass(frozen=True, kw_only=True)
class SlotPage:
    """One page of a window: its slots and the wall times its DST policy drops there, the
    ledger window to read for them, and where the next page starts (None: the last)."""

    slots: list[datetime]
    dst: list[DstSkip]
    rows_from: datetime
    rows_to: datetime
    next_after: datetime | None


def page_slots(
    spec: JobSpec, *, start: datetime, end: datetime, after: datetime | None, limit: int
) -> SlotPage:
    """At most `limit` entries of [start, end] after `after` (the previous page's last
    instant): slots and dropped DST wall times both count, so a page of a per-second job
    across a spring night (3,600 dropped wall times) is as long as any other. Bounded work
    whatever the window: a 10-year window of a per-second job is paged."""
    begin = after if after is not None else start - _EPSILON
    slots, more = slot_times(spec, after=begin, until=end, limit=limit)
    rows_to = slots[-1] if more else end
    dst = dst_skips(spec, after=begin, until=rows_to)
    if len(slots) + len(dst) > limit:
        rows_to, more = _page_end(sorted([*slots, *(skip.slot for skip in dst)]), limit), True
        slots = [slot for slot in slots if slot <= rows_to]
        dst = [skip for skip in dst if skip.slot <= rows_to]
    return SlotPage(
        slots=slots,
        dst=dst,
        rows_from=begin + _EPSILON,
        rows_to=rows_to,
        next_after=rows_to if more else None,
    )


def _page_end(instants: Sequence[datetime], limit: int) -> datetime:
    """The last instant of a page of at most `limit` of these (sorted) entries. A page ends
    between instants, never inside one (a dropped wall time and a slot may share one: the
    next page starts after it); only when the first instant alone holds more than `limit`
    entries (limit 1) is the page longer, so that paging always advances."""
    last = instants[limit - 1]
    if instants[limit] != last:
        return last
    earlier = [moment for moment in instants[:limit] if moment < last]
    return earlier[-1] if earlier else last
