"""The plan: the difference between desired and actual state, as a value.

Terraform's lessons, kept: a closed set of actions; a human reason per change that
never drives apply; "No changes." as a first-class answer; a hash that identifies the
plan so `apply --plan-hash` can refuse a state that moved since the preview.

Ownership rules (Flux's inventory): only jobs in our inventory are ever removed or
repaired; `apscheduler_jobs` rows we do not own are reported as foreign and left alone.
Jobs whose source file is quarantined keep their last applied spec: they are never
updated or removed, only repaired back to that spec if their scheduler row is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from reconciler.core.essence import canonical_json
from reconciler.core.state import (
    ActualState,
    DesiredJob,
    DesiredState,
    InventoryRow,
    Revision,
    SchedulerJob,
    SchedulerRow,
    scheduler_job,
)
from reconciler.core.triggers import next_fire_times
from reconciler.redact import looks_secret
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import JobSpec

Action = Literal["add", "update", "pause", "resume", "remove", "repair"]
ACTIONS: tuple[Action, ...] = ("add", "update", "pause", "resume", "remove", "repair")
SENSITIVE = "(sensitive)"
# Fields whose change moves the fire times: the plan shows next fires before/after.
_TIMING_FIELDS = ("schedule", "timezone", "start", "end", "paused")


@dataclass(frozen=True, slots=True)
class FieldDiff:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    """One action on one job. `target` is what apply writes (None for remove).

    The field diffs of an add or a remove (every field) are computed only when read:
    apply never reads them, and flattening 10,000 new specs costs seconds."""

    action: Action
    job: str
    source: str | None
    reason: str
    eager_diffs: tuple[FieldDiff, ...] = ()
    only_before: Mapping[str, Any] | None = None  # remove: every field goes
    only_after: Mapping[str, Any] | None = None  # add: every field comes
    fires_before: tuple[datetime, ...] = ()
    fires_after: tuple[datetime, ...] = ()
    before_hash: str | None = None
    after_hash: str | None = None
    target: Target | None = None

    @cached_property
    def diffs(self) -> tuple[FieldDiff, ...]:
        if self.only_before is None and self.only_after is None:
            return self.eager_diffs
        return tuple(_diff_fields(self.only_before or {}, self.only_after or {}))


@dataclass(frozen=True, slots=True)
class Target:
    """The state a change leaves a job in: its inventory row and its scheduler row."""

    spec: JobSpec
    spec_hash: str
    essence: Mapping[str, Any]
    source: str
    line: int
    status: str  # active / paused / completed
    revision: str | None
    revision_dirty: bool
    scheduler: SchedulerJob
    keep_next_run_time: bool  # the trigger is unchanged: do not re-time the row

    def inventory_row(self) -> InventoryRow:
        """The `scheduled_jobs` row that applying this target writes."""
        return InventoryRow(
            name=self.spec.name,
            essence=self.essence,
            spec_hash=self.spec_hash,
            status=self.status,
            source_file=self.source,
            source_line=self.line,
            revision=self.revision,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    quarantined: Mapping[str, tuple[Diagnostic, ...]]
    foreign: tuple[str, ...]
    revision: Revision
    managed_jobs: int
    desired_jobs: int
    refused: str | None = None
    plan_hash: str = ""
    summary: Mapping[str, int] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


@dataclass
class PlanMemo:
    """What `make_plan` may reuse from its previous call in a long-running process.

    It keeps facts about immutable objects only, so reusing them cannot change a plan:
    a job found in sync with exactly these desired, inventory and scheduler objects is in
    sync again with the same three objects, provided its status cannot change with time
    (a schedule without end, or a paused job); mappings with the same keys have the same
    sorted names and the same foreign rows. A pass over 10,000 unchanged jobs then costs a few
    identity checks per job instead of a comparison of every field."""

    in_sync: dict[str, tuple[DesiredJob | None, InventoryRow, SchedulerRow | None]] = field(
        default_factory=dict
    )
    names: tuple[Mapping[str, object], Mapping[str, object], list[str]] | None = None
    foreign: (
        tuple[Mapping[str, object], Mapping[str, object], Mapping[str, object], tuple[str, ...]]
        | None
    ) = None


def make_plan(
    desired: DesiredState,
    actual: ActualState,
    *,
    now: datetime,
    max_delete_fraction: float = 0.5,
    allow_mass_delete: bool = False,
    preview_fires: bool = True,
    memo: PlanMemo | None = None,
) -> Plan:
    """Diff `desired` against `actual`. Pure: same inputs, same plan (with or without a
    `memo`, which only saves work).

    `preview_fires=False` leaves the next-fire previews out (apply does not show them,
    and computing three fire times for each of 10,000 new jobs costs seconds)."""
    memo = memo if memo is not None else PlanMemo()
    fires = _fires if preview_fires else _no_fires
    frozen_files = set(desired.quarantined)
    changes: list[Change] = []
    previous, in_sync = memo.in_sync, {}
    # Bound methods: this loop runs for every job on every daemon pass.
    wanted_of, have_of, row_of = desired.jobs.get, actual.inventory.get, actual.scheduler.get
    seen_of = previous.get
    for name in _sorted_names(desired, actual, memo):
        wanted, have = wanted_of(name), have_of(name)
        change: Change | None = None
        row: SchedulerRow | None = None
        if have is not None:
            row = row_of(name)
            seen = seen_of(name)
            if (
                seen is not None
                and seen[0] is wanted
                and seen[1] is have
                and seen[2] is row
                and (wanted is not None or have.source_file in frozen_files)
            ):
                in_sync[name] = seen
                continue
        if wanted is not None and have is None:
            change = _add(wanted, desired.revision, now=now, fires=fires)
        elif wanted is not None and have is not None:
            change = _compare(wanted, have, actual, desired.revision, now=now, fires=fires)
            if change is None and (wanted.open_ended or wanted.spec.paused):
                in_sync[name] = (wanted, have, row)
        elif have is not None and have.source_file not in frozen_files:
            change = _remove(have)
        elif have is not None:
            change = _repair_if_drifted(have, actual, reason_prefix="quarantined file; ")
            if change is None:
                in_sync[name] = (None, have, row)
        if change is not None:
            changes.append(change)
    memo.in_sync = in_sync
    return _finish(
        changes,
        desired,
        actual,
        _foreign(desired, actual, memo),
        refused=_guard(changes, desired, actual, max_delete_fraction, allow_mass_delete),
    )


def _sorted_names(desired: DesiredState, actual: ActualState, memo: PlanMemo) -> list[str]:
    known = memo.names
    if (
        known is not None
        and _same_keys(known[0], desired.jobs)
        and _same_keys(known[1], actual.inventory)
    ):
        return known[2]
    names = sorted(set(desired.jobs) | set(actual.inventory))
    memo.names = (desired.jobs, actual.inventory, names)
    return names


def _foreign(desired: DesiredState, actual: ActualState, memo: PlanMemo) -> tuple[str, ...]:
    """Scheduler rows that are neither ours nor declared: reported, never touched."""
    known = memo.foreign
    if (
        known is not None
        and _same_keys(known[0], desired.jobs)
        and _same_keys(known[1], actual.inventory)
        and _same_keys(known[2], actual.scheduler)
    ):
        return known[3]
    foreign = tuple(sorted(set(actual.scheduler) - set(actual.inventory) - set(desired.jobs)))
    memo.foreign = (desired.jobs, actual.inventory, actual.scheduler, foreign)
    return foreign


def _same_keys(before: Mapping[str, object], now: Mapping[str, object]) -> bool:
    # A set comparison of the keys costs a tenth of sorting them again.
    return before is now or before.keys() == now.keys()


def actual_after(
    actual: ActualState, plan: Plan, written: Mapping[str, SchedulerRow]
) -> ActualState:
    """The actual state once `plan` is applied: what reading both tables back would
    give, given the scheduler rows apply wrote (as they would be decoded). Rows the
    plan did not touch stay the same objects."""
    inventory, scheduler = dict(actual.inventory), dict(actual.scheduler)
    for change in plan.changes:
        if change.action == "remove":
            inventory.pop(change.job, None)
            scheduler.pop(change.job, None)
        elif change.target is not None and change.action != "repair":
            inventory[change.job] = change.target.inventory_row()
    scheduler.update(written)
    return ActualState(inventory=inventory, scheduler=scheduler)


def _add(wanted: DesiredJob, revision: Revision, *, now: datetime, fires: Fires) -> Change:
    target = _target(wanted, revision.commit, revision.dirty, now=now, keep=False)
    return Change(
        action="add",
        job=wanted.name,
        source=wanted.source,
        reason=f"declared in {wanted.source}:{wanted.line}, not scheduled yet",
        only_after=wanted.essence,
        fires_after=fires(wanted.spec, now) if target.status == "active" else (),
        after_hash=wanted.spec_hash,
        target=target,
    )


def _compare(
    wanted: DesiredJob,
    have: InventoryRow,
    actual: ActualState,
    revision: Revision,
    *,
    now: datetime,
    fires: Fires,
) -> Change | None:
    if wanted.spec_hash == have.spec_hash:
        status = wanted.status(now=now)
        if status != have.status:
            target = _target(wanted, have.revision, False, now=now, keep=True, status=status)
            return Change(
                action="update",
                job=wanted.name,
                source=wanted.source,
                reason=f"status {have.status} -> {status}"
                + (" (no future fire time)" if status == "completed" else ""),
                eager_diffs=(FieldDiff("status", have.status, status),),
                before_hash=have.spec_hash,
                after_hash=wanted.spec_hash,
                target=target,
            )
        return _repair_if_drifted(have, actual, wanted=wanted)
    diffs = tuple(_diff_fields(have.essence, wanted.essence))
    changed = {diff.path.split(".", 1)[0].split("[", 1)[0] for diff in diffs}
    timing = bool(changed & set(_TIMING_FIELDS))
    action: Action = "update"
    if changed == {"paused"}:
        action = "pause" if wanted.spec.paused else "resume"
    target = _target(wanted, revision.commit, revision.dirty, now=now, keep=not timing)
    before = have.spec()
    return Change(
        action=action,
        job=wanted.name,
        source=wanted.source,
        reason=_update_reason(action, diffs, wanted.source),
        eager_diffs=diffs,
        fires_before=fires(before, now) if timing and have.status == "active" else (),
        fires_after=fires(wanted.spec, now) if timing and target.status == "active" else (),
        before_hash=have.spec_hash,
        after_hash=wanted.spec_hash,
        target=target,
    )


def _update_reason(action: Action, diffs: tuple[FieldDiff, ...], source: str) -> str:
    if action == "pause":
        return f"paused: true in {source}"
    if action == "resume":
        return f"paused: false in {source}; next fire computed from now"
    fields = ", ".join(diff.path for diff in diffs[:5]) + (" ..." if len(diffs) > 5 else "")
    return f"spec changed in {source}: {fields}"


def _remove(have: InventoryRow) -> Change:
    return Change(
        action="remove",
        job=have.name,
        source=have.source_file,
        reason=f"no longer declared in the jobs folder (was in {have.source_file})",
        only_before=have.essence,
        before_hash=have.spec_hash,
    )


def _repair_if_drifted(
    have: InventoryRow,
    actual: ActualState,
    *,
    wanted: DesiredJob | None = None,
    reason_prefix: str = "",
) -> Change | None:
    """A repair when the scheduler row of a job we own is missing or not what we wrote."""
    if have.status == "completed":
        return None  # APScheduler removes finished jobs itself; nothing should be there
    spec = wanted.spec if wanted else have.spec()
    expected = scheduler_job(spec, spec_hash=have.spec_hash, revision=have.revision)
    row = actual.scheduler.get(have.name)
    if row is None:
        why = "its apscheduler_jobs row is missing"
    else:
        mismatch = expected.matches(row)
        paused_row = row.next_run_time is None
        if mismatch is not None:
            why = f"its apscheduler_jobs row is wrong: {mismatch}"
        elif paused_row != (have.status == "paused"):
            why = "its apscheduler_jobs row is " + ("paused" if paused_row else "not paused")
        else:
            return None
    target = Target(
        spec=spec,
        spec_hash=have.spec_hash,
        essence=have.essence,
        source=have.source_file,
        line=have.source_line,
        status=have.status,
        revision=have.revision,
        revision_dirty=False,
        scheduler=expected,
        keep_next_run_time=row is not None and row.fingerprint == expected.fingerprint,
    )
    return Change(
        action="repair",
        job=have.name,
        source=have.source_file,
        reason=reason_prefix + "drift: " + why,
        before_hash=have.spec_hash,
        after_hash=have.spec_hash,
        target=target,
    )


def _target(
    wanted: DesiredJob,
    commit: str | None,
    dirty: bool,
    *,
    now: datetime,
    keep: bool,
    status: str | None = None,
) -> Target:
    return Target(
        spec=wanted.spec,
        spec_hash=wanted.spec_hash,
        essence=wanted.essence,
        source=wanted.source,
        line=wanted.line,
        status=status or wanted.status(now=now),
        revision=commit,
        revision_dirty=dirty,
        scheduler=scheduler_job(wanted.spec, spec_hash=wanted.spec_hash, revision=commit),
        keep_next_run_time=keep,
    )


def _fires(spec: JobSpec, now: datetime) -> tuple[datetime, ...]:
    return next_fire_times(spec, after=now, count=3)


def _no_fires(spec: JobSpec, now: datetime) -> tuple[datetime, ...]:
    return ()


Fires = Callable[[JobSpec, datetime], tuple[datetime, ...]]


def _guard(
    changes: list[Change],
    desired: DesiredState,
    actual: ActualState,
    max_delete_fraction: float,
    allow_mass_delete: bool,
) -> str | None:
    removals = sum(1 for change in changes if change.action == "remove")
    if not removals or allow_mass_delete:
        return None
    if not desired.jobs:
        return (
            f"the jobs folder declares no job at all, which would remove all {removals} "
            "jobs; if that is really meant, pass --allow-mass-delete"
        )
    managed = len(actual.inventory)
    if removals > max_delete_fraction * managed:
        return (
            f"this would remove {removals} of {managed} jobs, more than "
            f"RECONCILER_MAX_DELETE_FRACTION={max_delete_fraction:g}; "
            "if that is really meant, pass --allow-mass-delete"
        )
    return None


def _finish(
    changes: list[Change],
    desired: DesiredState,
    actual: ActualState,
    foreign: tuple[str, ...],
    *,
    refused: str | None,
) -> Plan:
    summary: dict[str, int] = dict.fromkeys(ACTIONS, 0)
    for change in changes:
        summary[change.action] += 1
    identity = {
        "changes": [[c.action, c.job, c.before_hash, c.after_hash, c.reason] for c in changes],
        "quarantined": sorted(desired.quarantined),
    }
    return Plan(
        changes=tuple(changes),
        quarantined=desired.quarantined,
        foreign=foreign,
        revision=desired.revision,
        managed_jobs=len(actual.inventory),
        desired_jobs=len(desired.jobs),
        refused=refused,
        plan_hash=hashlib.sha256(canonical_json(identity).encode()).hexdigest(),
        summary=summary,
    )


def _diff_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldDiff]:
    flat_before, flat_after = _flatten(before), _flatten(after)
    diffs = []
    for path in sorted(set(flat_before) | set(flat_after)):
        old, new = flat_before.get(path), flat_after.get(path)
        if old != new:
            if _sensitive(path):
                old = SENSITIVE if path in flat_before else None
                new = SENSITIVE if path in flat_after else None
            diffs.append(FieldDiff(path, old, new))
    return diffs


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def _sensitive(path: str) -> bool:
    return any(looks_secret(part) for part in path.split("."))
