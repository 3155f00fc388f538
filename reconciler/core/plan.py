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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from reconciler.core.diff import changed_paths
from reconciler.core.frozen import quick_init, quick_new
from reconciler.core.memory import CoreMemory
from reconciler.core.plan_basis import PlanBasis, timed_due
from reconciler.core.state import (
    ActualState,
    DerivedDict,
    DesiredJob,
    DesiredState,
    InventoryRow,
    JobContent,
    Revision,
    SchedulerJob,
    SchedulerRow,
    built,
    transient,
)
from reconciler.core.triggers import TriggerMemory, first_fire_after, next_fire_times
from reconciler.core.vocabulary import Action, JobStatus
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.essence import canonical_json
from reconciler.spec.model import JobSpec

ACTIONS = tuple(Action)
# Fields whose change moves the fire times: the plan shows next fires before/after.
_TIMING_FIELDS = ("schedule", "timezone", "start", "end", "paused")


@quick_init
@dataclass(frozen=True, slots=True)
class Change:
    """One action on one job: the job before (None for an add) and after (None for a
    remove), as values; what differs field by field is computed where it is shown
    (reconciler.core.diff.FieldDiffer.between). `target` is what apply writes (None
    for a remove)."""

    action: Action
    job: str
    source: str | None
    reason: str
    before: JobContent | None = None
    after: JobContent | None = None
    fires_before: tuple[datetime, ...] = ()
    fires_after: tuple[datetime, ...] = ()
    target: Target | None = None
    renamed_from: str | None = None  # rename: the job's previous name
    # What the plan hash covers of the job before and after: content, never the reason.
    before_key: str | None = None
    after_key: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Target:
    """The state a change leaves a job in: its inventory row and its scheduler row."""

    spec: JobSpec
    spec_hash: str
    essence: Mapping[str, Any]
    source: str
    line: int
    status: JobStatus
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


# What an add reads per job, read once: a member read from its enum class goes through
# EnumType's __getattr__ hook (~900 instructions, Python 3.11).
_ADD, _ACTIVE, _COMPLETED = Action.ADD, JobStatus.ACTIVE, JobStatus.COMPLETED
_STATUS_TEXT = {status: status.value for status in JobStatus}
# What the hot paths make per job, made without a class call (core.frozen.quick_new).
_new_change = quick_new(Change)
_new_target = quick_new(Target)
_new_content = quick_new(JobContent)


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
    hints: tuple[str, ...] = ()  # for people: "looks like a rename" ...
    # What the plan was made from, for the next plan to reuse (not part of its value).
    basis: PlanBasis | None = field(default=None, compare=False, repr=False)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)


def make_plan(
    desired: DesiredState,
    actual: ActualState,
    *,
    now: datetime,
    max_delete_fraction: float = 0.5,
    allow_mass_delete: bool = False,
    preview_fires: bool = True,
    previous: PlanBasis | None = None,
    memory: CoreMemory | None = None,
) -> Plan:
    """Diff `desired` against `actual`. Pure: same inputs, same plan, whether or not
    `previous` (the basis of the last plan of a long-running process, see PlanBasis) is
    given: it only saves work, and is never changed. Nor does `memory` (see
    core/memory.py) change the plan: a long-running process passes its own, to skip work
    it did in earlier passes; without one, a fresh one serves this call.

    `preview_fires=False` leaves the next-fire previews out (apply does not show them,
    and computing three fire times for each of 10,000 new jobs costs seconds)."""
    memory = memory if memory is not None else CoreMemory()
    fires = _previews(memory.triggers) if preview_fires else _no_fires
    frozen_files = frozenset(desired.quarantined)
    examine = previous.names_to_examine(desired, actual, now=now) if previous is not None else None
    timed: Mapping[str, datetime | None] = {}
    everything = examine is None  # every name: no previous plan, or it cannot tell
    if examine is None or previous is None:
        examine = set(desired.jobs) | set(actual.inventory)
        foreign = set(actual.scheduler) - examine
    else:
        # Time-dependent jobs not examined keep their verdict, and the instant it ends.
        timed = previous.timed
        if not examine.isdisjoint(timed):
            timed = {name: until for name, until in timed.items() if name not in examine}
        # Whether a name is in each mapping can only have changed if it is examined (a
        # key added or removed is a changed key): the rest of the last answer stands.
        foreign = set(previous.foreign) - examine
        foreign.update(
            name
            for name in examine
            if name in actual.scheduler
            and name not in actual.inventory
            and name not in desired.jobs
        )
    renames = _find_renames(desired, actual, examine)
    examine.update(renames)  # a renamed job's old name is decided with its new one
    renamed_to = {new: old for old, new in renames.items()}
    changes: list[Change] = []
    unsettled: set[str] = set()
    found: dict[str, datetime | None] = {}  # time-dependent jobs found in sync: until when
    # Nothing in the inventory (a cold apply): the names to examine are the declared
    # ones, which the files list nearly in order; sorted from there (timsort) rather
    # than from a set's order, 100,000 names take a third of the time.
    cold = everything and not actual.inventory
    names = sorted(desired.jobs if cold else examine)
    if cold:
        # Nothing in the inventory: every declared job is an add (no rename: nothing to
        # rename from; none in sync), planned without the loop's questions.
        jobs, revision = desired.jobs, desired.revision
        changes = [_add(jobs[name], revision, now, fires, memory) for name in names]
        unsettled.update(names)
        names = []
    for name in names:
        wanted, have = desired.jobs.get(name), actual.inventory.get(name)
        if name in renames:
            unsettled.add(name)
            continue  # planned as the rename of its new name
        if name in renamed_to and wanted is not None:
            have = actual.inventory[renamed_to[name]]
            change: Change | None = _compare(
                wanted, have, actual, desired.revision, now=now, fires=fires, memory=memory
            )
        elif have is None and wanted is not None:  # _verdict's first case, without its call
            change = _add(wanted, desired.revision, now, fires, memory)
        else:
            change = _verdict(
                wanted, have, actual, desired.revision, frozen_files, now, fires, memory
            )
        if change is not None:
            changes.append(change)
            unsettled.add(name)
        elif wanted is not None and _moves_with_time(wanted):
            spec = transient(wanted.found)  # in sync: not kept built
            if spec.jitter_seconds:  # fire times drawn at random: every pass
                unsettled.add(name)
            else:
                found[name] = first_fire_after(spec, now=now, memory=memory.triggers)
    if found:
        timed = {**timed, **found}
    # The same names found in sync until the same instants: the same earliest one.
    same = previous is not None and timed is previous.timed
    due = previous.due if previous is not None and same else timed_due(timed)
    summary = _summary(changes, cold)
    return _finish(
        changes,
        summary,
        desired,
        actual,
        tuple(sorted(foreign)),
        refused=_guard(
            summary[Action.REMOVE], desired, actual, max_delete_fraction, allow_mass_delete
        ),
        basis=PlanBasis(
            desired=desired.jobs,
            inventory=actual.inventory,
            scheduler=actual.scheduler,
            frozen_files=frozen_files,
            unsettled=frozenset(unsettled),
            foreign=frozenset(foreign),  # rows neither ours nor declared: reported only
            timed=timed,
            planned_at=now,
            due=due,
        ),
    )


def _verdict(
    wanted: DesiredJob | None,
    have: InventoryRow | None,
    actual: ActualState,
    revision: Revision,
    frozen_files: frozenset[str],
    now: datetime,
    fires: Fires,
    memory: CoreMemory,
) -> Change | None:
    """The change one job needs, or None when it is in sync."""
    if wanted is not None and have is None:
        return _add(wanted, revision, now, fires, memory)
    if wanted is not None and have is not None:
        return _compare(wanted, have, actual, revision, now=now, fires=fires, memory=memory)
    if have is not None and have.source_file not in frozen_files:
        return _remove(have)
    if have is not None:
        return _repair_if_drifted(have, actual, memory, reason_prefix="quarantined file; ")
    return None  # a foreign row: reported, never planned


def _find_renames(desired: DesiredState, actual: ActualState, examine: set[str]) -> dict[str, str]:
    """old name -> new name, for each examined job that declares `previous_names` and is
    not in the inventory yet while one of its previous names is (and is no longer
    declared itself). The first such previous name wins."""
    renames: dict[str, str] = {}
    if not actual.inventory:
        return renames  # nothing to rename from (a cold apply: 100,000 jobs looked at)
    for name in examine:
        wanted = desired.jobs.get(name)
        if wanted is None or not wanted.previous_names or name in actual.inventory:
            continue
        for old in wanted.previous_names:
            if old in actual.inventory and old not in desired.jobs and old not in renames:
                renames[old] = name
                break
    return renames


def _moves_with_time(wanted: DesiredJob) -> bool:
    """Whether the job's status may change with the clock alone (see DesiredJob.status)."""
    return not (wanted.open_ended or wanted.paused)


def actual_after(
    actual: ActualState, plan: Plan, written: Mapping[str, SchedulerRow]
) -> ActualState:
    """The actual state once `plan` is applied: what reading both tables back would
    give, given the scheduler rows apply wrote (as they would be decoded). Rows the
    plan did not touch stay the same objects."""
    touched = touched_jobs(plan)
    inventory = DerivedDict(actual.inventory, base=actual.inventory, changed=touched)
    scheduler = DerivedDict(actual.scheduler, base=actual.scheduler, changed=touched)
    for change in plan.changes:
        if change.action == Action.REMOVE:
            inventory.pop(change.job, None)
            scheduler.pop(change.job, None)
        if change.renamed_from is not None:
            inventory.pop(change.renamed_from, None)
            scheduler.pop(change.renamed_from, None)
        # A rename's row moves to the new name with its target's content (not `elif`).
        if change.target is not None and change.action != Action.REPAIR:
            inventory[change.job] = change.target.inventory_row()
    scheduler.update(written)
    return ActualState(inventory=inventory, scheduler=scheduler)


def touched_jobs(plan: Plan) -> list[str]:
    """Every job name a plan writes: its changes' jobs and the old names of renames."""
    names = [change.job for change in plan.changes]
    names += (change.renamed_from for change in plan.changes if change.renamed_from)
    return names


def _add(
    wanted: DesiredJob, revision: Revision, now: datetime, fires: Fires, memory: CoreMemory
) -> Change:
    """The add of a declared job not in the inventory: `_target(wanted, ..., keep=False)`
    inlined, every object made by position (a cold plan makes one per declared job)."""
    found, spec_hash, source, line = wanted.found, wanted.spec_hash, wanted.source, wanted.line
    commit, status = revision.commit, wanted.status(now=now, triggers=memory.triggers)
    spec = found if type(found) is JobSpec else built(found)  # wanted.spec, without its call
    scheduler = memory.scheduler_job(found, spec_hash=spec_hash, revision=commit)
    target = _new_target(
        spec,
        spec_hash,
        wanted.essence,
        source,
        line,
        status,
        commit,
        revision.dirty,
        scheduler,
        False,
    )
    where = f"declared in {source}:{line}, not scheduled yet"
    return _new_change(
        _ADD,
        scheduler.id,  # the spec's name, as read once by scheduler_job
        source,
        where + "; completed: no future fire time, it never fires"
        if status == _COMPLETED
        else where,
        None,
        _new_content(wanted.essence, spec_hash, status, source),
        (),
        fires(spec, now) if fires is not _no_fires and status == _ACTIVE else (),
        target,
        None,
        None,
        # JobContent.key: the status as its text (an f-string formats an enum member
        # through its __format__, ~600 instructions).
        f"{spec_hash}|{_STATUS_TEXT[status]}|{source}",
    )


def _compare(
    wanted: DesiredJob,
    have: InventoryRow,
    actual: ActualState,
    revision: Revision,
    *,
    now: datetime,
    fires: Fires,
    memory: CoreMemory,
) -> Change | None:
    """The change from `have` to `wanted`; a rename when their names differ."""
    renamed = wanted.name != have.name
    if wanted.spec_hash == have.spec_hash and not renamed:
        status = wanted.status(now=now, triggers=memory.triggers)
        if status != have.status:
            return _status_change(wanted, have, status, memory, now=now)
        if wanted.source != have.source_file:
            return _moved(wanted, have, revision, memory, now=now)
        return _repair_if_drifted(have, actual, memory, wanted=wanted)
    paths = changed_paths(have.essence, wanted.essence)
    if wanted.source != have.source_file:
        paths.append("source")
    changed = {path.split(".", 1)[0].split("[", 1)[0] for path in paths}
    timing = bool(changed & set(_TIMING_FIELDS))
    action = Action.RENAME if renamed else Action.UPDATE
    if changed == {"paused"}:
        action = Action.PAUSE if wanted.spec.paused else Action.RESUME
    target = _target(wanted, revision.commit, revision.dirty, memory, now=now, keep=not timing)
    before = have.spec()
    return Change(
        action=action,
        job=wanted.name,
        source=wanted.source,
        reason=_update_reason(action, paths, wanted.source, have.name),
        before=(was := have.content()),
        after=(after := _after(wanted, target)),
        fires_before=fires(before, now) if timing and have.status == JobStatus.ACTIVE else (),
        fires_after=fires(wanted.spec, now) if timing and target.status == JobStatus.ACTIVE else (),
        target=target,
        renamed_from=have.name if renamed else None,
        before_key=was.key,
        after_key=after.key,
    )


def _status_change(
    wanted: DesiredJob, have: InventoryRow, status: JobStatus, memory: CoreMemory, *, now: datetime
) -> Change:
    target = _target(wanted, have.revision, False, memory, now=now, keep=True, status=status)
    return Change(
        action=Action.UPDATE,
        job=wanted.name,
        source=wanted.source,
        reason=f"status {have.status} -> {status}"
        + (" (no future fire time)" if status == JobStatus.COMPLETED else ""),
        before=(was := have.content()),
        after=(after := _after(wanted, target)),
        target=target,
        before_key=was.key,
        after_key=after.key,
    )


def _moved(
    wanted: DesiredJob, have: InventoryRow, revision: Revision, memory: CoreMemory, *, now: datetime
) -> Change:
    """The same job declared in another file: only its source changes; its scheduler
    row keeps its next fire (no schedule effect)."""
    target = _target(wanted, revision.commit, revision.dirty, memory, now=now, keep=True)
    return Change(
        action=Action.UPDATE,
        job=wanted.name,
        source=wanted.source,
        reason=f"moved from {have.source_file} to {wanted.source}; no schedule effect",
        before=(was := have.content()),
        after=(after := _after(wanted, target)),
        target=target,
        before_key=was.key,
        after_key=after.key,
    )


def _update_reason(action: Action, paths: list[str], source: str, old: str) -> str:
    if action == Action.PAUSE:
        return f"paused: true in {source}"
    if action == Action.RESUME:
        return f"paused: false in {source}; next fire computed from now"
    if action == Action.RENAME:
        return f"renamed from {old} (previous_names in {source}); history and next fire kept"
    fields = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
    return f"spec changed in {source}: {fields}"


def _remove(have: InventoryRow) -> Change:
    return Change(
        action=Action.REMOVE,
        job=have.name,
        source=have.source_file,
        reason=f"no longer declared in the jobs folder (was in {have.source_file})",
        before=(was := have.content()),
        before_key=was.key,
    )


def _repair_if_drifted(
    have: InventoryRow,
    actual: ActualState,
    memory: CoreMemory,
    *,
    wanted: DesiredJob | None = None,
    reason_prefix: str = "",
) -> Change | None:
    """A repair when the scheduler row of a job we own is missing or not what we wrote."""
    if have.status == JobStatus.COMPLETED:
        return None  # APScheduler removes finished jobs itself; nothing should be there
    row = actual.scheduler.get(have.name)
    paused = have.status == JobStatus.PAUSED
    if row is not None and row.written_for is not None:
        if row.written_for != (have.spec_hash, have.revision):
            raise ValueError(f"{have.name}: a scheduler row vouched for another inventory row")
        if (row.next_run_time is None) == paused:
            return None  # holds what `expected` below would be: no job built, none compared
    found = wanted.found if wanted else have.spec()
    expected = memory.scheduler_job(found, spec_hash=have.spec_hash, revision=have.revision)
    if row is not None and row.written_for is not None:
        row = expected.as_written(row)
    if row is None:
        why = "its apscheduler_jobs row is missing"
    else:
        mismatch = expected.matches(row)
        paused_row = row.next_run_time is None
        if mismatch is not None:
            why = f"its apscheduler_jobs row is wrong: {mismatch}"
        elif paused_row != paused:
            why = "its apscheduler_jobs row is " + ("paused" if paused_row else "not paused")
        else:
            return None
    target = Target(
        spec=built(found),
        spec_hash=have.spec_hash,
        essence=have.essence,
        source=have.source_file,
        line=have.source_line,
        status=JobStatus(have.status),
        revision=have.revision,
        revision_dirty=False,
        scheduler=expected,
        keep_next_run_time=row is not None and row.fingerprint == expected.fingerprint,
    )
    return Change(
        action=Action.REPAIR,
        job=have.name,
        source=have.source_file,
        reason=reason_prefix + "drift: " + why,
        before=(content := have.content()),
        after=content,
        target=target,
        before_key=_row_key(row),
        after_key=content.key,
    )


def _row_key(row: SchedulerRow | None) -> str:
    """A scheduler row as the plan hash sees it (a repair's "before")."""
    if row is None:
        return "row:missing"
    timing = "paused" if row.next_run_time is None else "scheduled"
    return f"row:{row.readable}|{row.func}|{row.fingerprint}|{timing}"


def _after(wanted: DesiredJob, target: Target) -> JobContent:
    return _new_content(wanted.essence, wanted.spec_hash, target.status, wanted.source)


def _target(
    wanted: DesiredJob,
    commit: str | None,
    dirty: bool,
    memory: CoreMemory,
    *,
    now: datetime,
    keep: bool,
    status: JobStatus | None = None,
) -> Target:
    found, spec_hash = wanted.found, wanted.spec_hash
    return _new_target(
        found if type(found) is JobSpec else built(found),  # wanted.spec, without its call
        spec_hash,
        wanted.essence,
        wanted.source,
        wanted.line,
        status or wanted.status(now=now, triggers=memory.triggers),
        commit,
        dirty,
        memory.scheduler_job(found, spec_hash=spec_hash, revision=commit),
        keep,
    )


def _previews(triggers: TriggerMemory) -> Fires:
    def fires(spec: JobSpec, now: datetime) -> tuple[datetime, ...]:
        return next_fire_times(spec, after=now, count=3, memory=triggers)

    return fires


def _no_fires(spec: JobSpec, now: datetime) -> tuple[datetime, ...]:
    return ()


Fires = Callable[[JobSpec, datetime], tuple[datetime, ...]]


def _guard(
    removals: int,
    desired: DesiredState,
    actual: ActualState,
    max_delete_fraction: float,
    allow_mass_delete: bool,
) -> str | None:
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


def _summary(changes: list[Change], adds: bool = False) -> dict[str, int]:
    """How many changes of each action; `adds`: every change is an add (a cold plan's)."""
    summary = {action.value: 0 for action in Action}  # plain str keys: orjson takes them
    if adds:
        summary[_ADD] = len(changes)
        return summary
    for change in changes:
        summary[change.action] += 1
    return summary


def _finish(
    changes: list[Change],
    summary: dict[str, int],
    desired: DesiredState,
    actual: ActualState,
    foreign: tuple[str, ...],
    *,
    refused: str | None,
    basis: PlanBasis,
) -> Plan:
    return Plan(
        changes=tuple(changes),
        quarantined=desired.quarantined,
        foreign=foreign,
        revision=desired.revision,
        managed_jobs=len(actual.inventory),
        desired_jobs=len(desired.jobs),
        refused=refused,
        plan_hash=plan_hash(changes),
        summary=summary,
        hints=_rename_hints(changes) if summary[Action.REMOVE] else (),
        basis=basis,
    )


def plan_hash(changes: Iterable[Change]) -> str:
    """The plan's identity: 64 hex digits, two halves. The first covers what the plan
    does (each change's action, job, previous name and content after), the second what
    it starts from (each changed job's content before). Never the reasons: rewording
    one must not make an approved plan stale. The halves let `apply --plan-hash` tell a
    different plan (the first half differs) from the same changes over a state that
    moved (only the second differs)."""
    intent, base = split_intent(list(changes))
    return _digest(intent) + _digest(base)


def split_intent(changes: list[Change]) -> tuple[list[list[Any]], list[list[Any]]]:
    """What each change does, and the content it starts from, as hashed."""
    intent = [[c.action, c.job, c.renamed_from, c.after_key] for c in changes]
    base = [[c.job, c.before_key] for c in changes]
    return intent, base


def _digest(rows: list[list[Any]]) -> str:
    """sha256 of `canonical_json(rows)`, without its search for floats (85 % of the
    hash's time: 30 -> 4.5 ms at 10,000 changes): the cells are texts (an Action is one)
    and None, so orjson's text is the canonical one unless orjson refuses a text (a lone
    surrogate; canonical_json then says so as it did)."""
    try:
        text = orjson.dumps(rows)
    except TypeError:
        text = canonical_json(rows).encode()
    return hashlib.sha256(text).hexdigest()[:32]


def _rename_hints(changes: list[Change]) -> tuple[str, ...]:
    """A remove and an add of the same spec under another name look like a rename."""
    removed = {
        _without_name(c.before.essence): c.job
        for c in changes
        if c.action == Action.REMOVE and c.before is not None
    }
    if not removed:
        return ()
    hints = []
    for change in changes:
        if change.action == Action.ADD and change.after is not None:
            old = removed.get(_without_name(change.after.essence))
            if old is not None:
                hints.append(
                    f"{old} -> {change.job} looks like a rename: add `previous_names: [{old}]` "
                    f"to {change.job} to keep its history and next fire"
                )
    return tuple(hints)


def _without_name(essence: Mapping[str, Any]) -> str:
    return canonical_json({key: value for key, value in essence.items() if key != "name"})
