"""Desired and actual state, as immutable values.

Desired: what the job files declare (plus the files that are quarantined).
Actual: our inventory (`scheduled_jobs`) and the scheduler's rows (`apscheduler_jobs`),
read by the store without ever going through APScheduler's job store methods.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from reconciler.core.fires import FIRE_CALLABLE, FirePayload, payload_of
from reconciler.core.frozen import quick_init, quick_new
from reconciler.core.triggers import (
    TriggerMemory,
    build_trigger,
    describe_trigger,
    first_fire_after,
    has_open_end,
)
from reconciler.core.vocabulary import JobStatus
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.essence import essence_and_hash
from reconciler.spec.model import JobSpec

# The statuses a plan gives each job, read once: a member read from its enum class goes
# through EnumType's __getattr__ hook (~900 instructions, Python 3.11), per job.
_ACTIVE, _PAUSED, _COMPLETED = JobStatus.ACTIVE, JobStatus.PAUSED, JobStatus.COMPLETED


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


class RecordedSpec:
    """A job's spec known by its essence, built only when first read: a one-shot plan
    reads the specs of the jobs that change, not of the 10,000 that do not (see
    spec.records). What the plan reads of every job is known without building: its name
    and paused flag (from the essence) and whether it fires for ever (`open_ended`,
    recorded with the file). The essence must be the spec's (the caller checked that it
    hashes to the spec's hash); previous names are not content, so they come apart."""

    __slots__ = ("_built", "essence", "open_ended", "previous_names")

    def __init__(
        self, essence: Mapping[str, Any], *, previous_names: tuple[str, ...], open_ended: bool
    ) -> None:
        self.essence = essence
        self.previous_names = previous_names
        self.open_ended = open_ended
        self._built: JobSpec | None = None

    @property
    def name(self) -> str:
        return str(self.essence["name"])

    @property
    def paused(self) -> bool:
        return bool(self.essence["paused"])

    def spec(self) -> JobSpec:
        """Built once (a memo: the same spec whenever it is built). Lax: the essence is
        JSON, its datetimes text (as InventoryRow.spec reads them)."""
        if self._built is None:
            self._built = self.fresh()
        return self._built

    def forget(self) -> None:
        """Drop the built spec (a daemon's, once the pass that read it is over)."""
        self._built = None

    def fresh(self) -> JobSpec:
        """The spec, built if it was not, and NOT remembered: what a check of a job in
        sync reads (a daemon holding 100,000 of these would otherwise hold 100,000 built
        specs after its startup pass, ~350 MB). Equal to `spec()`."""
        if self._built is not None:
            return self._built
        data = dict(self.essence)
        if self.previous_names:
            data["previous_names"] = list(self.previous_names)
        return JobSpec.model_validate(data, strict=False)

    def __repr__(self) -> str:
        return f"RecordedSpec({self.name!r})"  # the essence may hold secrets: not shown


# A job's spec as a job holds it: parsed, or recorded and built when read.
SpecFound = JobSpec | RecordedSpec


def built(found: SpecFound) -> JobSpec:
    return found if isinstance(found, JobSpec) else found.spec()


def transient(found: SpecFound) -> JobSpec:
    """The spec, not remembered by a RecordedSpec that was not built yet (see
    RecordedSpec.fresh): for reads of jobs a plan finds in sync."""
    return found if isinstance(found, JobSpec) else found.fresh()


@quick_init
@dataclass(frozen=True, slots=True, eq=False)
class DesiredJob:
    """A declared job. `found`: its spec, parsed or recorded (RecordedSpec); either way
    it compares and hashes as a job holding the built spec does."""

    found: SpecFound
    source: str
    line: int
    spec_hash: str
    essence: Mapping[str, Any]
    open_ended: bool = False  # fires for ever: its status needs no fire-time computation

    @property
    def spec(self) -> JobSpec:
        return built(self.found)

    @property
    def name(self) -> str:
        return self.found.name

    @property
    def paused(self) -> bool:
        return self.found.paused

    @property
    def previous_names(self) -> Sequence[str]:
        return self.found.previous_names

    def _key(self) -> tuple[Any, ...]:
        return (self.spec, self.source, self.line, self.spec_hash, self.essence, self.open_ended)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, DesiredJob)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @classmethod
    def of(
        cls,
        spec: SpecFound,
        *,
        source: str,
        line: int = 1,
        known_essence: tuple[Mapping[str, Any], str] | None = None,
    ) -> DesiredJob:
        """`known_essence`: the spec's essence and hash, if already computed (a
        RecordedSpec's essence is its own)."""
        if known_essence is None:
            known_essence = essence_and_hash(built(spec))
        data, digest = known_essence
        make = new_desired_job if cls is DesiredJob else cls
        if isinstance(spec, RecordedSpec):
            return make(spec, source, line, digest, data, spec.open_ended)
        return make(spec, source, line, digest, data, has_open_end(spec))

    def status(self, *, now: datetime, triggers: TriggerMemory | None = None) -> JobStatus:
        """active, paused or completed (see runtime_status)."""
        if self.found.paused:  # as runtime_status says first, without building the spec
            return _PAUSED
        if self.open_ended:
            return _ACTIVE
        return _fire_status(transient(self.found), now=now, triggers=triggers)


# Made per job by the loader and the plan: without a class call (core.frozen.quick_new).
# Its fields by position: found, source, line, spec_hash, essence, open_ended.
new_desired_job = quick_new(DesiredJob)


@quick_init
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


class PackedKwargs(Mapping[str, Any]):
    """A decoded row's arguments kept as their JSON text (orjson): ~0.4 KB where the
    decoded dicts take ~1.8 KB a row (180 MB at 100,000 rows in a daemon). Read back
    when compared or read; equal to the mapping it was packed from (`pack_kwargs` packs
    only a value that JSON gives back equal: no tuple, NaN, non-text key, huge int)."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text

    def unpacked(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.text)
        return value

    def __getitem__(self, key: str) -> Any:
        return self.unpacked()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.unpacked())

    def __len__(self) -> int:
        return len(self.unpacked())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedKwargs):
            return self.text == other.text or self.unpacked() == other.unpacked()
        if isinstance(other, Mapping):
            return self.unpacked() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a mapping: unhashable, as a dict

    def __repr__(self) -> str:
        return f"PackedKwargs({self.unpacked()!r})"


def pack_kwargs(value: dict[str, Any]) -> Mapping[str, Any]:
    """`value` as a PackedKwargs when its JSON text reads back equal to it, else as is."""
    try:
        text = orjson.dumps(value)
    except TypeError:  # a key that is not text, an integer beyond 64 bits, ...
        return value
    if orjson.loads(text) != value:
        return value
    # Copied: the bytes orjson returns keep its whole buffer (4 KB for a 0.4 KB text,
    # orjson 3.13; tracemalloc), which made 100,000 packed rows take 410 MB, not 47.
    return PackedKwargs(bytes(memoryview(text)))


def same_kwargs(row: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a row's arguments are `wanted` (dict equality, however either is held)."""
    if isinstance(row, PackedKwargs):
        return row.unpacked() == dict(wanted)
    return dict(row) == dict(wanted)


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

    def same_job(self, other: SchedulerRow) -> bool:
        """Whether `other` holds what this row holds but for the value of its next run
        time (both have one, or neither): a fire moved it on. A plan reads only whether
        a row has a next run time (core.plan_basis)."""
        return (
            (self.next_run_time is None) == (other.next_run_time is None)
            and (self.id, self.func, self.fingerprint, self.readable, self.written_for)
            == (other.id, other.func, other.fingerprint, other.readable, other.written_for)
            and (self.misfire_grace_time, self.coalesce, self.max_instances)
            == (other.misfire_grace_time, other.coalesce, other.max_instances)
            and (self.kwargs is other.kwargs or self.kwargs == other.kwargs)
        )


@dataclass(frozen=True, slots=True)
class ActualState:
    inventory: Mapping[str, InventoryRow]
    scheduler: Mapping[str, SchedulerRow]


@quick_init
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
            (same_kwargs(row.kwargs, self.kwargs), "its arguments differ from the spec"),
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


_new_scheduler_job = quick_new(SchedulerJob)  # one per job a plan writes: see quick_new


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
    fields = spec.__dict__  # the model's field values, read once (see fire_payload)
    if triggers is None:
        trigger = build_trigger(spec)
        fingerprint = describe_trigger(trigger)
    else:
        trigger, fingerprint = triggers.trigger_and_fingerprint(spec, fields)
    payload: FirePayload = payload_of(fields, spec_hash, revision)
    name = fields["name"]
    # Made per job a plan writes: the fields by position (id, trigger, fingerprint,
    # kwargs, misfire_grace_time, coalesce, max_instances).
    return _new_scheduler_job(
        name,
        trigger,
        fingerprint,
        {"job": name, "payload": payload},  # a fresh dict: not copied again
        fields["misfire_grace_seconds"],
        fields["coalesce"],
        FIRE_MAX_INSTANCES,
    )


def runtime_status(
    spec: JobSpec, *, now: datetime, triggers: TriggerMemory | None = None
) -> JobStatus:
    """active, paused, or completed (no future fire: a past one-off, an end passed)."""
    if spec.paused:
        return JobStatus.PAUSED
    if has_open_end(spec):
        return JobStatus.ACTIVE
    return _fire_status(spec, now=now, triggers=triggers)


def _fire_status(spec: JobSpec, *, now: datetime, triggers: TriggerMemory | None) -> JobStatus:
    """runtime_status of a spec neither paused nor open-ended: whether it fires again."""
    if first_fire_after(spec, now=now, memory=triggers) is None:
        return _COMPLETED
    return _ACTIVE
