"""What a plan was computed from, so that the next plan examines only what moved.

A job's verdict is a function of its desired job, inventory row and scheduler row (all
immutable values), whether its file is quarantined, and, for a job whose status can
change with time (an end date, a one-off), the clock. So a pass only needs to look at
the names whose three objects are not the very ones of the previous pass (found by
identity, at C speed), the names that had a change then, and the time-dependent ones
whose status may have moved: a pass over 10,000 jobs with one file changed examines
about ten. A different set of quarantined files examines everything again.

A scheduler row that differs from the last pass's only by the value of its next run
time (a fire moved it on) leaves its job's verdict as it was: a verdict reads whether a
row has a next run time (paused or not), never when.

A time-dependent job found in sync keeps its verdict until its status can move: its
status is "active" while a fire is still ahead and "completed" once none is, and the
fire times of a schedule without jitter are a fixed set of instants (intervals are
anchored, not counted from now). So an active job's verdict holds until its next fire
time, a completed one's for good, as long as the clock does not go back before the
plan that found it (then every one is examined again). 10,000 one-off jobs are then
examined when they fire, not on every pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import compress
from operator import is_not

from reconciler.core.state import (
    ActualState,
    DerivedDict,
    DesiredJob,
    DesiredState,
    InventoryRow,
    SchedulerRow,
)


@dataclass(frozen=True, slots=True)
class PlanBasis:
    """The mappings a plan was made from and what it concluded about them (a value
    carried by the plan; `make_plan(previous=...)` reads it and never changes it)."""

    desired: Mapping[str, DesiredJob]
    inventory: Mapping[str, InventoryRow]
    scheduler: Mapping[str, SchedulerRow]
    frozen_files: frozenset[str]
    unsettled: frozenset[str]  # names to examine on every pass
    foreign: frozenset[str]  # rows neither ours nor declared
    # Time-dependent names found in sync at `planned_at`: the instant from which each
    # must be examined again (its next fire time), None: never (no fire ahead).
    timed: Mapping[str, datetime | None]
    planned_at: datetime
    due: datetime | None = None  # the earliest instant in `timed` (None: none)

    def names_to_examine(
        self, desired: DesiredState, actual: ActualState, *, now: datetime
    ) -> set[str] | None:
        """The names whose verdict at `now` may differ from this basis's; None: all."""
        if self.frozen_files != frozenset(desired.quarantined):
            return None
        names = set(self.unsettled)
        if now < self.planned_at:  # the clock went back: statuses may have moved back
            names.update(self.timed)
        elif self.due is not None and now >= self.due:
            names.update(
                name for name, until in self.timed.items() if until is not None and now >= until
            )
        names |= _changed_keys(self.desired, desired.jobs)
        names |= _changed_keys(self.inventory, actual.inventory)
        names |= _moved_rows(self.scheduler, actual.scheduler)
        return names


def timed_due(timed: Mapping[str, datetime | None]) -> datetime | None:
    """The earliest instant at which a name of `timed` must be examined (None: never)."""
    return min((until for until in timed.values() if until is not None), default=None)


def _moved_rows(before: Mapping[str, SchedulerRow], after: Mapping[str, SchedulerRow]) -> set[str]:
    """`_changed_keys` of the scheduler rows, but for rows that only moved to another
    next run time (SchedulerRow.same_job: a fire's write-back): a job's verdict reads
    whether its row has a next run time, never its value, so it stands. At 100,000 jobs
    a pass after a burst of fires examined thousands of jobs for nothing (their specs
    built again to compare their rows)."""
    changed = _changed_keys(before, after)
    return {name for name in changed if not _only_moved(before.get(name), after.get(name))}


def _only_moved(before: SchedulerRow | None, after: SchedulerRow | None) -> bool:
    return before is not None and after is not None and before.same_job(after)


def _changed_keys(before: Mapping[str, object], after: Mapping[str, object]) -> set[str]:
    """Keys whose value is not the very same object in both, or that are in one only."""
    if before is after:
        return set()
    if isinstance(after, DerivedDict) and after.base is before:
        return set(after.changed)
    if len(before) == len(after) and list(before) == list(after):
        # The same keys in the same order (a table read again, in its stored order):
        # compare the values pairwise without a Python-level loop.
        return set(compress(after, map(is_not, before.values(), after.values())))
    changed = {key for key, value in after.items() if before.get(key) is not value}
    changed.update(key for key in before if key not in after)
    return changed
