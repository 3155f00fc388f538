"""Desired and actual state, as immutable values.

Desired: what the job files declare (plus the files that are quarantined).
Actual: our inventory (`scheduled_jobs`) and the scheduler's rows (`apscheduler_jobs`),
read by the store without ever going through APScheduler's job store methods.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.core.fires import FIRE_CALLABLE, FirePayload, fire_payload
from reconciler.core.triggers import (
    TriggerMemory,
    build_trigger,
    describe_trigger,
    first_fire_after,
    has_open_end,
)
from reconciler.core.vocabulary import JobStatus
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.essence import essence, hash_essence
from reconciler.spec.model import JobSpec


class DerivedDict(dict[str, Any]):
    """A dict made from `base` by setting or removing only the keys in `changed`.

    It lets a diff against `base` (the plan's, see core.plan) look at those keys alone
    instead of comparing 10,000 entries. A base that is itself derived is held weakly,
    so past states are not chained in memory (`base` is then None once nothing else
    holds it, and a diff against it simply compares every entry); neither mapping is
    ever modified."""

    __slots__ = ("__weakref__", "_base", "changed")

    def __init__(
        self,
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        base: Mapping[str, Any],
        changed: Iterable[str],
    ) -> None:
        super().__init__(items)
        self._base: Mapping[str, Any] | weakref.ref[DerivedDict] = (
            weakref.ref(base) if isinstance(base, DerivedDict) else base
        )
        self.changed = frozenset(changed)

    @property
    def base(self) -> Mapping[str, Any] | None:
        base = self._base
        return base() if isinstance(base, weakref.ref) else base


@dataclass(frozen=True, slots=True)
class Revision:
    """The git revision of the jobs folder: HEAD, and whether the tree had local edits."""

    commit: str | None = None
    dirty: bool = False

    def label(self) -> str:
        if self.commit is None:
            return "(not a git checkout)"
        return self.commit[:12] + (" (dirty)" if self.dirty else "")


@dataclass(frozen=True, slots=True)
class DesiredJob:
    spec: JobSpec
    source: str
    line: int
    spec_hash: str
    essence: Mapping[str, Any]
    open_ended: bool = False  # fires for ever: its status needs no fire-time computation

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def of(
        cls,
        spec: JobSpec,
        *,
        source: str,
        line: int = 1,
        known_essence: tuple[Mapping[str, Any], str] | None = None,
    ) -> DesiredJob:
        """`known_essence`: the spec's essence and hash, if already computed."""
        if known_essence is None:
            fresh = essence(spec)
            known_essence = fresh, hash_essence(fresh)
        data, digest = known_essence
        return cls(spec, source, line, digest, data, has_open_end(spec))

    def status(self, *, now: datetime, triggers: TriggerMemory | None = None) -> JobStatus:
        """active, paused or completed (see runtime_status)."""
        if self.open_ended and not self.spec.paused:
            return JobStatus.ACTIVE
        return runtime_status(self.spec, now=now, triggers=triggers)


@dataclass(frozen=True, slots=True)
class JobContent:
    """A job as a plan's change sees it on one side: what it declares (its essence, a
    secret-bearing value kept out of repr, and the essence's hash), in which file, and
    its status. Diffs between two of these are computed where they are shown."""

    essence: Mapping[str, Any] = field(repr=False)
    spec_hash: str
    status: str  # a JobStatus
    source: str

    @property
    def key(self) -> str:
        """What the plan hash covers of this side: content, never a reason."""
        return f"{self.spec_hash}|{self.status}|{self.source}"


@dataclass(frozen=True, slots=True)
class DesiredState:
    jobs: Mapping[str, DesiredJob]
    quarantined: Mapping[str, tuple[Diagnostic, ...]] = field(default_factory=dict)
    revision: Revision = Revision()
    files: int = 0


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """One row of `scheduled_jobs`: a job we own, as last applied."""

    name: str
    essence: Mapping[str, Any]
    spec_hash: str
    status: str  # active / paused / completed
    source_file: str
    source_line: int
    revision: str | None = None

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(dict(self.essence), strict=False)

    def content(self) -> JobContent:
        return JobContent(self.essence, self.spec_hash, self.status, self.source_file)


@dataclass(frozen=True, slots=True)
class SchedulerRow:
    """One row of `apscheduler_jobs`, decoded without importing its callable.

    `readable` is False when the pickled state could not be decoded at all; such a row
    of ours is drift and gets repaired, a foreign one is only reported.

    `written_for` (spec hash, revision): the store did not decode the row because its
    stored bytes are exactly those we wrote for that inventory content under the running
    code (store/scheduler_rows.py read_scheduler_rows_once); its content is then that
    of `scheduler_job` for them, and the fields above but `next_run_time` are not read.
    """

    id: str
    next_run_time: float | None
    func: str = ""
    fingerprint: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    misfire_grace_time: int | None = None
    coalesce: bool = True
    max_instances: int = 1
    readable: bool = True
    written_for: tuple[str, str | None] | None = None


@dataclass(frozen=True, slots=True)
class ActualState:
    inventory: Mapping[str, InventoryRow]
    scheduler: Mapping[str, SchedulerRow]


@dataclass(frozen=True, slots=True)
class SchedulerJob:
    """What the scheduler row of a job must hold: the job's runtime essence."""

    id: str
    # An APScheduler trigger (no __eq__): two jobs compare by its fingerprint, which names
    # every field that matters, not by whether one memory built both triggers.
    trigger: Any = field(compare=False)
    fingerprint: str
    kwargs: Mapping[str, Any]
    misfire_grace_time: int
    coalesce: bool
    max_instances: int

    def matches(self, row: SchedulerRow) -> str | None:
        """None when `row` holds exactly this job; else why not, for the plan's reason."""
        checks = (
            (row.readable, "its stored state cannot be decoded"),
            (row.func == FIRE_CALLABLE, f"it calls {row.func or '?'} instead of {FIRE_CALLABLE}"),
            (row.fingerprint == self.fingerprint, "its trigger differs from the spec"),
            (dict(row.kwargs) == dict(self.kwargs), "its arguments differ from the spec"),
            (
                (row.misfire_grace_time, row.coalesce, row.max_instances)
                == (self.misfire_grace_time, self.coalesce, self.max_instances),
                "its misfire/coalesce settings differ from the spec",
            ),
        )
        return next((why for ok, why in checks if not ok), None)

    def as_written(self, row: SchedulerRow) -> SchedulerRow:
        """`row` as decoding it gives when it holds exactly this job (what a row
        vouched for by `written_for` holds)."""
        return SchedulerRow(
            id=row.id,
            next_run_time=row.next_run_time,
            func=FIRE_CALLABLE,
            fingerprint=self.fingerprint,
            kwargs=dict(self.kwargs),
            misfire_grace_time=self.misfire_grace_time,
            coalesce=self.coalesce,
            max_instances=self.max_instances,
        )


# APScheduler's max_instances counts calls of fire_job still running in its executor, and
# fire_job only enqueues (microseconds). Overlap of RUNS is max_concurrent_runs, enforced
# by the dispatcher against the ledger; a low value here would only turn a slow thread
# pool into slots dropped as "max_instances".
FIRE_MAX_INSTANCES = 10


def scheduler_job(
    spec: JobSpec,
    *,
    spec_hash: str,
    revision: str | None,
    triggers: TriggerMemory | None = None,
) -> SchedulerJob:
    """The `apscheduler_jobs` content for a job. `revision` is the revision that last
    CHANGED the job (kept in its inventory row), not the newest commit: a commit that
    leaves a job alone must not rewrite (and so re-time) its row. Determined completely
    by (spec_hash, revision), so a CoreMemory may remember it (core/memory.py)."""
    trigger = build_trigger(spec, memory=triggers)
    fingerprint = describe_trigger(trigger) if triggers is None else triggers.fingerprint(trigger)
    payload: FirePayload = fire_payload(spec, spec_hash=spec_hash, revision=revision)
    return SchedulerJob(
        id=spec.name,
        trigger=trigger,
        fingerprint=fingerprint,
        kwargs={"job": spec.name, "payload": dict(payload)},
        misfire_grace_time=spec.misfire_grace_seconds,
        coalesce=spec.coalesce,
        max_instances=FIRE_MAX_INSTANCES,
    )


def runtime_status(
    spec: JobSpec, *, now: datetime, triggers: TriggerMemory | None = None
) -> JobStatus:
    """active, paused, or completed (no future fire: a past one-off, an end passed)."""
    if spec.paused:
        return JobStatus.PAUSED
    if has_open_end(spec):
        return JobStatus.ACTIVE
    if first_fire_after(spec, now=now, memory=triggers) is None:
        return JobStatus.COMPLETED
    return JobStatus.ACTIVE
