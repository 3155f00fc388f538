"""reconcile_once: load the files, read the state, plan, guard, apply, record.

One pass is level-triggered: it computes the full desired and the full actual state,
however it was woken. Reading the actual state, planning and applying happen in ONE
database transaction, under a lock, so two appliers (the daemon and a CLI `apply`)
serialise, and a crash at any point leaves the state as it was: the next pass converges.
Every pass, whatever its outcome, is recorded in `reconcile_runs` (Flux's defer).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconciler import metrics
from reconciler.core.approval import SavedPlan, explain_mismatch
from reconciler.core.memo import intern_values
from reconciler.core.memory import CoreMemory
from reconciler.core.plan import Plan, actual_after, make_plan, touched_jobs
from reconciler.core.plan_basis import PlanBasis
from reconciler.core.state import (
    ActualState,
    DerivedDict,
    DesiredJob,
    DesiredState,
    RecordedSpec,
    Revision,
    new_desired_job,
)
from reconciler.core.triggers import has_open_end
from reconciler.core.vocabulary import (
    APPLIED_OUTCOMES,
    COUNT_COLUMNS,
    SETTLED_OUTCOMES,
    Action,
    ErrorKind,
    JobStatus,
    PassResult,
    ReconcileOutcome,
    Trigger,
)
from reconciler.engine.apply import apply_plan
from reconciler.engine.beside import run_beside
from reconciler.engine.gitrev import read_revision
from reconciler.engine.gitsource import GitTreeCache, git_ref, load_from_git
from reconciler.errors import RefusedError, StalePlanError, TransientError
from reconciler.settings import Settings
from reconciler.spec.files import FileListing, find_job_files
from reconciler.spec.incremental import load_with_records, record_of
from reconciler.spec.loader import (
    FileOutcome,
    LoadAhead,
    LoadCache,
    LoadedJob,
    LoadResult,
    load_jobs,
)
from reconciler.spec.model import JobSpec
from reconciler.spec.records import FileRecord, validation_context
from reconciler.store.apply_lock import hold_apply_lock, notify_applied
from reconciler.store.change_counts import ChangeCounts, read_change_counts, written_here
from reconciler.store.db import has_schema
from reconciler.store.events import record_job_events
from reconciler.store.file_records import read_file_records, write_file_records
from reconciler.store.fingerprint import (
    Fingerprint,
    NewVersions,
    read_fingerprint,
    read_fingerprint_since,
)
from reconciler.store.fingerprint import supported as fingerprint_supported
from reconciler.store.inventory import (
    EssenceCache,
    read_inventory,
    record_reconcile_run,
    replace_quarantine,
)
from reconciler.store.own_writes import OwnWrites, WriteBack, explained
from reconciler.store.scheduler_rows import (
    RowDecoder,
    patch_own_writes,
    patch_scheduler_rows,
    read_scheduler_rows,
    read_scheduler_rows_once,
    record_rows_in_sync,
)

log = logging.getLogger(__name__)


class Unsettled(TransientError):
    """The jobs folder changed again while a watch pass planned (`settled` said so):
    the pass wrote and recorded nothing; the daemon runs it again."""


class _Settling(Exception):
    """Raised out of a watch pass's transaction (rolled back: it only read) once it has
    a plan that writes, so that `settled` waits holding no lock (reconcile_once)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__("waiting for the jobs folder to settle")
        self.plan = plan


# Up to this many changes, a pass carries its cached state forward by what it wrote;
# past it (a cold apply), patching costs more than the next pass's full read.
TRACKED_CHANGES_MAX = 1000
# A warm-up asks whether to stop after parsing this many files (~0.1-0.3 s of CPU).
WARM_FILES = 200


# A healthy file's outcome and its desired jobs, by name.
_FileJobs = tuple[FileOutcome, list[tuple[str, DesiredJob]]]


@dataclass
class ReconcileCaches:
    """What a long-running process keeps between passes so that a pass after nothing
    changed re-parses no file, unpickles no row and reads no row. A CLI run has none."""

    files: LoadCache = field(default_factory=LoadCache)
    # The jobs folder's last listing, patched by the paths file events name (daemon).
    listing: FileListing | None = None
    git: GitTreeCache = field(default_factory=GitTreeCache)  # RECONCILER_SOURCE=git:REF
    # Per file outcome, its desired jobs (hash and essence computed once per parsed
    # file). Keyed by id() while the outcome itself is held in the value, so ids cannot
    # be reused.
    desired: dict[int, _FileJobs] = field(default_factory=dict)
    # The last load result and the desired jobs built from it.
    loaded: tuple[LoadResult, dict[str, DesiredJob]] | None = None
    essences: EssenceCache = field(default_factory=EssenceCache)
    # What the `job_files` table holds as far as this process knows (None: not read
    # yet), the load result it was last made to match, and the record made of each
    # file outcome (by id(); the outcome is held in the value), so that a pass after one
    # file changed makes one record, not 1,000.
    records: dict[str, FileRecord] | None = None
    recorded: LoadResult | None = None
    records_of: dict[int, tuple[FileOutcome, str, FileRecord | None]] = field(default_factory=dict)
    rows: RowDecoder = field(default_factory=RowDecoder)
    # A one-shot pass: the SHA-256 of each scheduler row it decoded, by id.
    decoded_rows: dict[str, str] = field(default_factory=dict)
    # What the last plan was made from: the next one examines only the jobs that moved.
    plan_basis: PlanBasis | None = None
    memory: CoreMemory = field(default_factory=CoreMemory)  # the pure core's speed-ups
    # The actual state after the last committed pass, and the fingerprint of the tables
    # it matches (PostgreSQL only; see reconciler.store.fingerprint; None on SQLite,
    # where only `counts` vouch for it).
    actual: tuple[Fingerprint | None, ActualState] | None = None
    # The tables' change counts `actual` matches (store.change_counts); None: unknown.
    counts: ChangeCounts | None = None
    # Whether the last read of the counts found them (PostgreSQL: then read in one
    # statement; see read_change_counts).
    counts_known: bool = False
    # What this daemon's scheduler wrote since the last pass (store.own_writes; its job
    # store adds to it), and the scheduler rows this process's own passes wrote since
    # `rows` last read the table (read again by id when the counts say nobody else wrote).
    own_writes: OwnWrites = field(default_factory=OwnWrites)
    reread: set[str] = field(default_factory=set)
    # A process that keeps these for its life (the daemon): the strings of essences and
    # decoded row arguments interned (core.memo.interned) as they enter the caches,
    # ~340 MB less at 100,000 jobs; a one-shot pass does not pay for it.
    compact: bool = False

    def __post_init__(self) -> None:
        if self.compact:
            self.rows = RowDecoder(compact=True)
            self.files = LoadCache(lean=lambda outcome: _lean_outcome(outcome, self.essences))


@dataclass(frozen=True)
class ReconcileResult:
    plan: Plan
    outcome: ReconcileOutcome
    duration: float


def load_desired(
    settings: Settings,
    caches: ReconcileCaches,
    *,
    now: datetime,
    changed: Iterable[str] | None = None,
) -> DesiredState:
    """The job files of the configured source: the working tree, or a commit's tree.
    `changed`: the paths file events named since the last call (None: unknown, every
    file listed again); only with `caches.listing`."""
    ref = git_ref(settings.source)
    if ref is None:
        if caches.listing is None or caches.listing.jobs_dir != settings.jobs_dir:
            caches.listing = FileListing(settings.jobs_dir)
        # git runs (rev-parse, status: 5-25 ms of a watch pass's wall at 100,000 jobs,
        # more in a large checkout) while the files load: it waits, holding no GIL.
        revision, loaded = run_beside(
            lambda: read_revision(settings.jobs_dir),
            lambda: load_jobs(
                settings.jobs_dir,
                settings=settings,
                now=now,
                cache=caches.files,
                essences=True,
                listing=caches.listing,
                changed=changed,
            ),
            name="pass-revision",
        )
        return _desired_state(loaded, revision, caches)
    loaded, revision = load_from_git(
        settings.jobs_dir, ref, settings=settings, now=now, cache=caches.git
    )
    return _desired_state(loaded, revision, caches)


def warm_caches(
    engine: Engine,
    settings: Settings,
    caches: ReconcileCaches,
    *,
    stopping: Callable[[], bool] = lambda: False,
) -> bool:
    """Fill `caches` as a pass would (files parsed, inventory and scheduler rows decoded)
    without planning, locking or writing anything: what a daemon does before it leads.
    The pass that follows reads the tables again (a startup pass always does), but the
    caches make that a read of names, hashes and row versions.

    `stopping` is asked between steps (every WARM_FILES files parsed, before each
    table): a daemon told to stop does not wait for the whole warm-up (50 s at 100,000
    jobs on a loaded machine). False: stopped early, the caches partly filled."""
    now = datetime.now(UTC)
    with _collector_paused():
        if git_ref(settings.source) is None:
            # The files parsed a slice at a time into the load cache: the load below
            # then finds them all there (what one load of every file would have made).
            entries, _ = find_job_files(settings.jobs_dir)
            for start in range(0, len(entries), WARM_FILES):
                if stopping():
                    return False
                chunk = entries[start : start + WARM_FILES]
                caches.files.outcomes(chunk, settings=settings, now=now, essences=True)
        if stopping():
            return False
        load_desired(settings, caches, now=now)
        with engine.connect() as connection:
            if not has_schema(connection):
                return True
            for read in (
                lambda: read_inventory(connection, caches.essences),
                lambda: read_scheduler_rows(connection, caches.rows),
            ):
                if stopping():
                    return False
                read()  # decoded into caches.essences, caches.rows
    return True


def load_desired_recorded(
    connection: Connection,
    settings: Settings,
    caches: ReconcileCaches,
    *,
    now: datetime,
    ahead: LoadAhead | None = None,
) -> DesiredState:
    """The job files of the working tree, for a one-shot pass: only files the
    `job_files` records do not stand for are parsed (see reconciler.spec.records); the
    jobs of the others are rebuilt from the essences the inventory read left in
    `caches.essences`. The same desired state as `load_desired`. `ahead`: files being
    loaded already (spec.loader.load_ahead)."""
    caches.records = read_file_records(connection)
    loaded = load_with_records(
        settings.jobs_dir,
        settings=settings,
        now=now,
        records=caches.records,
        context=validation_context(settings),
        essences=caches.essences.get,
        ahead=ahead,
    )
    return _desired_state(loaded, read_revision(settings.jobs_dir), caches)


def _desired_state(loaded: LoadResult, revision: Revision, caches: ReconcileCaches) -> DesiredState:
    if caches.loaded is None or caches.loaded[0] is not loaded:
        caches.desired, jobs = _desired_jobs(loaded, caches)
        caches.loaded = (loaded, jobs)
    return DesiredState(
        jobs=caches.loaded[1],
        quarantined=dict(loaded.quarantined),
        revision=revision,
        files=loaded.files,
    )


def _desired_jobs(
    loaded: LoadResult, caches: ReconcileCaches
) -> tuple[dict[int, _FileJobs], dict[str, DesiredJob]]:
    """The desired jobs of the healthy files, built anew only for files parsed anew.

    The mapping is rebuilt (cheap: no job is re-hashed) and says which names the rebuilt or
    vanished files hold (DerivedDict), so the plan examines only those."""
    known: dict[int, _FileJobs] = {}
    changed: list[str] = []
    fresh: list[_FileJobs] = []
    for outcome in loaded.healthy:
        entry = caches.desired.get(id(outcome))
        if entry is None or entry[0] is not outcome:
            entry = (outcome, _file_jobs(outcome, caches))
            fresh.append(entry)
        known[id(outcome)] = entry
    pairs = chain.from_iterable(entry[1] for entry in known.values())
    if caches.loaded is None:
        return known, dict(pairs)
    for _, jobs in fresh:
        changed += (name for name, _ in jobs)
    gone = [entry for key, entry in caches.desired.items() if key not in known]
    for _, jobs in gone:  # a file gone, changed or quarantined: its jobs may be gone
        changed += (name for name, _ in jobs)
    base = caches.loaded[1]
    if _same_names(gone, fresh):
        # Files re-read with the same names in the same places (an edit, a touch): the
        # mapping is the last one with their jobs replaced, in the same key order as
        # the mapping built from every file (a copy at C speed, not 100,000 pairs).
        patched = DerivedDict(base, base=base, changed=changed)
        patched.update(chain.from_iterable(jobs for _, jobs in fresh))
        return known, patched
    return known, DerivedDict(pairs, base=base, changed=changed)


def _same_names(gone: list[_FileJobs], fresh: list[_FileJobs]) -> bool:
    """Whether the files re-read declare the names of the files they replace, file by
    file in the same order (then every name keeps its place in the mapping)."""
    return len(gone) == len(fresh) and all(
        old.source == new.source and [name for name, _ in was] == [name for name, _ in now]
        for (old, was), (new, now) in zip(gone, fresh, strict=True)
    )


def _file_jobs(outcome: FileOutcome, caches: ReconcileCaches) -> list[tuple[str, DesiredJob]]:
    """`[(job.name, _desired(job, ...)) for job in outcome.jobs]`, made without a call
    per job where the loader computed a parsed spec's essence (every job of a cold
    apply): the name read from the essence, whether it fires for ever remembered per
    cron (TriggerMemory.open_end), no property, no keywords."""
    essences, compact, open_end = caches.essences, caches.compact, caches.memory.triggers.open_end
    made = []
    for job in outcome.jobs:
        found, known = job.found, job.essence
        if known is None or type(found) is not JobSpec:
            made.append((job.name, _desired(job, essences, compact=compact)))
            continue
        data, digest = known
        shared = _shared_essence(data, digest, essences, compact=compact)
        desired = new_desired_job(found, job.source, job.line, digest, shared, open_end(found))
        made.append((data["name"], desired))
    return made


def _desired(job: LoadedJob, essences: EssenceCache, *, compact: bool = False) -> DesiredJob:
    """The job as desired; its essence becomes the one `essences` holds for its hash (a
    hash names its content), so that the inventory read, which decodes only the specs
    whose hash it does not know, shares it: one essence per spec hash in a daemon, not
    one from the file and one from the database (200-270 MB at 100,000 jobs)."""
    desired = DesiredJob.of(job.found, source=job.source, line=job.line, known_essence=job.essence)
    shared = _shared_essence(desired.essence, desired.spec_hash, essences, compact=compact)
    return desired if shared is desired.essence else replace(desired, essence=shared)


def _shared_essence(
    data: Mapping[str, Any], spec_hash: str, essences: EssenceCache, *, compact: bool
) -> Mapping[str, Any]:
    """The essence to hold for a job whose essence is `data`: the one `essences` holds
    for its hash if equal, else `data` (then held by `essences` if it held none)."""
    shared = essences.get(spec_hash)
    if shared is None:
        if compact and isinstance(data, dict):
            intern_values(data)  # in place: the loader's job holds it too
        essences.put(spec_hash, data)
        return data
    if shared is data:
        return data  # a recorded job's essence: the very one `essences` holds
    # Compared, not trusted: a row edited by hand may carry a hash its spec does not have.
    return shared if shared == data else data


def _lean_outcome(outcome: FileOutcome, essences: EssenceCache) -> FileOutcome:
    """A parsed file's outcome as a daemon keeps it: each job's spec recorded
    (core.state.RecordedSpec: ~100 B) over its essence, shared with `essences`, instead
    of the pydantic JobSpec (~3.5 KB; 350 MB at 100,000 jobs). Equal to `outcome`: a
    RecordedSpec builds the very spec its essence was made from. A spec is then built
    when a plan reads it, and kept only for a job that changes."""
    if outcome.diagnostics:
        return outcome  # quarantined: its jobs are never planned
    jobs = []
    for job in outcome.jobs:
        if not isinstance(job.found, JobSpec) or job.essence is None:
            return outcome  # nothing to gain, or the essence is not known
        data, spec_hash = job.essence
        shared = _shared_essence(data, spec_hash, essences, compact=True)
        found = RecordedSpec(
            shared,
            previous_names=tuple(job.found.previous_names),
            open_ended=has_open_end(job.found),
        )
        jobs.append(LoadedJob(found, job.source, job.line, job.column, (shared, spec_hash)))
    return replace(outcome, jobs=tuple(jobs))


def read_actual(connection: Connection, caches: ReconcileCaches) -> ActualState:
    """Inventory and scheduler rows. A database without our schema holds nothing yet:
    a plan against it shows every job as an add (apply creates the schema first)."""
    if not has_schema(connection):
        return ActualState(inventory={}, scheduler={})
    return _read_tables(connection, caches)


def read_actual_once(connection: Connection, caches: ReconcileCaches) -> ActualState:
    """`read_actual` for a one-shot pass: the scheduler rows that hold exactly what we
    wrote for their job's inventory row are not decoded (read_scheduler_rows_once)."""
    if not has_schema(connection):
        return ActualState(inventory={}, scheduler={})
    inventory = read_inventory(connection, caches.essences)
    scheduler = read_scheduler_rows_once(connection, inventory, caches.decoded_rows)
    return ActualState(inventory=inventory, scheduler=scheduler)


def _read_tables(connection: Connection, caches: ReconcileCaches) -> ActualState:
    return ActualState(
        inventory=read_inventory(connection, caches.essences),
        scheduler=read_scheduler_rows(connection, caches.rows),
    )


def _load_beside_fingerprint(
    connection: Connection,
    settings: Settings,
    caches: ReconcileCaches,
    *,
    now: datetime,
    changed: Iterable[str] | None,
    counts: ChangeCounts | None,
    own: list[WriteBack] | None = None,
) -> tuple[DesiredState, tuple[Fingerprint, NewVersions] | None]:
    """`load_desired` on this thread while another reads the fingerprint that
    `_read_actual_cached` would read first (the connection is the other thread's alone
    until it is joined, here, whatever happens). None: no fingerprint on this database,
    or none needed (neither table written since the last pass but by this daemon's own
    scheduler, `own`: see `_own_writes`)."""
    same = _unchanged(caches, counts)
    if own is not None:
        same = (same[0], True)
    if not fingerprint_supported(connection) or all(same):
        return load_desired(settings, caches, now=now, changed=changed), None
    inventory = _known_inventory(caches) if same[0] else None
    found, desired = run_beside(
        lambda: read_fingerprint_since(connection, caches.rows.horizon, inventory=inventory),
        lambda: load_desired(settings, caches, now=now, changed=changed),
        name="pass-fingerprint",
    )
    return desired, found


def _unchanged(caches: ReconcileCaches, counts: ChangeCounts | None) -> tuple[bool, bool]:
    """Whether the inventory, and the scheduler's rows, are as the cached state has them:
    their change counts (read before anything else this pass) are the ones it matches."""
    seen = caches.counts if caches.actual is not None else None
    if seen is None or counts is None:
        return False, False
    return seen.inventory == counts.inventory, seen.scheduler == counts.scheduler


def _own_writes(
    caches: ReconcileCaches, counts: ChangeCounts | None, writes: list[WriteBack] | None
) -> list[WriteBack] | None:
    """The scheduler's write-backs (taken from `caches.own_writes` before `counts` were
    read) that explain every move of the scheduler's count since the cached state, the
    inventory's count not moved: nobody else wrote either table (store.own_writes).
    None: not so (or not known); the pass reads as before. Writes not yet visible to
    `counts` are put back for the next pass."""
    seen = caches.counts if caches.actual is not None else None
    if writes is None or counts is None or seen is None or seen.inventory != counts.inventory:
        return None
    if seen.snapshot is None or counts.snapshot is None:
        return None
    found = explained(seen.scheduler, counts.scheduler, seen.snapshot, counts.snapshot, writes)
    if found is None:
        return None
    new, later = found
    caches.own_writes.put_back(later)
    return new


def _known_inventory(caches: ReconcileCaches) -> tuple[int, int] | None:
    fingerprint = caches.actual[0] if caches.actual is not None else None
    return fingerprint.inventory if fingerprint is not None else None


def _read_actual_cached(
    connection: Connection,
    caches: ReconcileCaches,
    *,
    reuse: bool,
    early: tuple[Fingerprint, NewVersions] | None = None,
    counts: ChangeCounts | None = None,
    own: list[WriteBack] | None = None,
) -> tuple[ActualState, Fingerprint | None]:
    """The actual state, and the fingerprint it was read at (None: not tracked).

    `counts` (store.change_counts), read first this pass: a table whose count has not
    moved since the cached state is taken from that state, neither scanned nor read.
    The fingerprint (and the counts) are taken BEFORE the rows are read: a write committed
    in between makes the rows newer than them, so the next pass sees a difference and
    reads again (never the reverse, which would hide that write). The scheduler rows
    that moved since the last read (fires) are found in the fingerprint's own scan and
    patched in (patch_scheduler_rows); the others are not read again. With `own` (the
    write-backs of this daemon's scheduler that explain every change of the counts:
    `_own_writes`), no table is scanned: the rows they moved are patched in
    (patch_own_writes).

    `caches.reread` (rows this process's passes wrote) is emptied whenever the decoder's
    last read is brought up to the table (those rows included)."""
    same = _unchanged(caches, counts) if reuse else (False, False)
    cached, caches.actual = caches.actual, None  # set again once this pass commits
    caches.counts = None
    if cached is not None and all(same):
        return cached[1], cached[0]  # neither table written since: nothing read
    if reuse and own is not None and cached is not None and cached[0] is not None and same[0]:
        assert counts is not None and counts.snapshot is not None  # see _own_writes
        rows = patch_own_writes(connection, caches.rows, own, caches.reread)
        if rows is not None:
            caches.reread = set()
            caches.rows.horizon = counts.snapshot.xmin % 2**32  # see store.own_writes
            fingerprint = Fingerprint(cached[0].inventory, caches.rows.summary or (0, 0))
            return ActualState(inventory=cached[1].inventory, scheduler=rows), fingerprint
    if not fingerprint_supported(connection):
        if cached is None or not any(same):
            return read_actual(connection, caches), None
        return _read_changed_tables(connection, caches, cached[1], same), None
    if cached is None and not has_schema(connection):
        return ActualState(inventory={}, scheduler={}), None
    decoder = caches.rows
    known = cached[0] if reuse and cached is not None else None
    if early is not None and known is not None:  # read with decoder.horizon
        fingerprint, new = early
    else:
        fingerprint, new = read_fingerprint_since(
            connection,
            decoder.horizon if known is not None else None,
            inventory=known.inventory if known is not None and same[0] else None,
        )
    if known is None or cached is None:
        state = _read_tables(connection, caches)
        decoder.horizon = new.horizon  # taken before the rows were read: see fingerprint
        caches.reread = set()
        return state, fingerprint
    before, state = known, cached[1]
    if before == fingerprint:
        return state, fingerprint
    # Usually only the scheduler's rows moved (fires): the inventory is not read again.
    scheduler = state.scheduler
    if before.scheduler != fingerprint.scheduler:
        patched = patch_scheduler_rows(connection, decoder, new, fingerprint.scheduler)
        scheduler = read_scheduler_rows(connection, decoder) if patched is None else patched
        decoder.horizon = new.horizon
        caches.reread = set()
    return ActualState(
        inventory=state.inventory
        if before.inventory == fingerprint.inventory
        else read_inventory(connection, caches.essences),
        scheduler=scheduler,
    ), fingerprint


def _read_changed_tables(
    connection: Connection, caches: ReconcileCaches, state: ActualState, same: tuple[bool, bool]
) -> ActualState:
    """Where there is no fingerprint (SQLite): the tables whose count moved, read."""
    return ActualState(
        inventory=state.inventory if same[0] else read_inventory(connection, caches.essences),
        scheduler=state.scheduler if same[1] else read_scheduler_rows(connection, caches.rows),
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a pass. A pass allocates hundreds of
    thousands of objects that live until its end, and CPython's collector, triggered by
    allocation counts, kept re-scanning them: a third of a cold apply (bench/RESULTS.md
    "Figures behind code choices"). What a pass leaves behind is collected once it is
    re-enabled."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def reconcile_once(
    engine: Engine,
    settings: Settings,
    *,
    trigger: Trigger,
    apply: bool = True,
    record: bool | None = None,
    allow_mass_delete: bool = False,
    allow_invalid: bool = True,
    expected_plan_hash: str | None = None,
    approved: SavedPlan | None = None,
    caches: ReconcileCaches | None = None,
    instance: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    before_commit: Callable[[Connection, Plan], None] | None = None,
    write_guard: Callable[[Plan], AbstractContextManager[object]] | None = None,
    ahead: LoadAhead | None = None,
    planned: Callable[[Plan], object] | None = None,
    changed_files: Iterable[str] | None = None,
    settled: Callable[[Plan], bool] | None = None,
) -> ReconcileResult:
    """One full pass. `apply=False` is a dry run (`reconcile plan`): nothing is written
    but, with `record` (a manual-sync daemon), the pass's own reconcile_runs row.
    `record` defaults to `apply`: every applying pass is recorded on every exit path,
    failures included (Flux's deferred status), and counted in the metrics.

    `allow_invalid=False` (one-shot commands): a quarantined file makes the pass apply
    nothing (outcome "invalid"). `expected_plan_hash` / `approved` (a saved plan): apply
    only that very plan, else raise StalePlanError saying what differs.

    Raises RefusedError (a safety guard said no; a dry run returns outcome "refused"
    instead, so the plan can still be shown), StalePlanError, SpecError never (broken
    files are quarantined, not raised), and TransientError/SQLAlchemy errors when a
    service fails. `before_commit` is a test seam (kill points); `write_guard`, held
    while the plan is written, is the daemon's way to keep its scheduler from firing a
    row that is being renamed. `ahead` (a one-shot pass on the working tree): files
    being loaded already (spec.loader.load_ahead); the caller cancels it if unused.
    `planned` is called with the plan being written, once, before the pass commits,
    while the added jobs' scheduler rows are made by a forked child and sent by a
    thread (engine.apply's `beside`: the CLI renders the plan's text then, instead of
    waiting for them); it must not use the pass's connection.

    With `caches` (a long-running process), a pass whose tables have not changed since
    the last committed pass (same fingerprint) plans against the state that pass left,
    without reading a row; a "resync" or "startup" pass always reads everything.
    `changed_files` (a daemon's watch pass): the paths file events named since the last
    pass; only they are looked at in the jobs folder (spec.files.FileListing). A resync
    or startup pass lists every file. `settled` (a daemon's watch pass, started at the
    first file event instead of after the quiet time): called with a plan that writes
    (changes or quarantined files), after its transaction was rolled back: it waits for
    the tree to settle holding no lock (a CLI `apply` or `plan` does not wait behind
    it). False means the tree changed meanwhile: Unsettled is raised, nothing written,
    nothing recorded (the daemon's next pass records), and the caches keep the state
    this pass read. True: the pass is read and planned again from that state (cheap:
    what nobody wrote since is not read again) at a `now` taken after the wait, so
    first fires are not already due when it commits, then written and recorded.
    """
    record = apply if record is None else record
    started = time.monotonic()
    if approved is not None:
        expected_plan_hash = approved.plan_hash
    run = partial(
        _reconcile,
        engine,
        settings,
        trigger=trigger,
        apply=apply,
        record=record,
        allow_mass_delete=allow_mass_delete,
        allow_invalid=allow_invalid,
        expected_plan_hash=expected_plan_hash,
        caches=caches,
        instance=instance,
        clock=clock,
        before_commit=before_commit,
        write_guard=write_guard,
        started=started,
        ahead=ahead,
        planned=planned,
        changed_files=changed_files,
    )
    try:
        try:
            result = run(settling=settled is not None)
        except _Settling as settling:
            assert settled is not None
            if not settled(settling.plan):
                raise Unsettled("the jobs folder changed while the pass planned") from None
            result = run(settling=False)
    except Unsettled:
        raise  # not a pass: nothing was written or decided
    except Exception as error:
        record_failed_pass(
            engine, trigger=trigger, error=error, started=started, instance=instance, write=record
        )
        raise
    plan, outcome = result.plan, result.outcome
    if apply and outcome == ReconcileOutcome.REFUSED:
        raise RefusedError(plan.refused or "refused")
    if outcome == ReconcileOutcome.STALE:
        assert expected_plan_hash is not None
        raise StalePlanError(explain_mismatch(expected_plan_hash, plan, approved=approved))
    return result


def _reconcile(
    engine: Engine,
    settings: Settings,
    *,
    trigger: Trigger,
    apply: bool,
    record: bool,
    allow_mass_delete: bool,
    allow_invalid: bool,
    expected_plan_hash: str | None,
    caches: ReconcileCaches | None,
    instance: str | None,
    clock: Callable[[], datetime],
    before_commit: Callable[[Connection, Plan], None] | None,
    write_guard: Callable[[Plan], AbstractContextManager[object]] | None,
    started: float,
    ahead: LoadAhead | None,
    planned: Callable[[Plan], object] | None,
    changed_files: Iterable[str] | None = None,
    settling: bool = False,
) -> ReconcileResult:
    # Without caches (a one-shot command) nothing is kept for a next pass: no
    # fingerprint is read and no written row is remembered.
    keep = caches is not None
    reuse = keep and trigger not in (Trigger.RESYNC, Trigger.STARTUP)
    # A one-shot pass on the working tree parses only the files its records do not
    # stand for, once it has read the inventory (whose essences rebuild the others).
    recorded = not keep and git_ref(settings.source) is None
    caches = caches or ReconcileCaches()
    clock_started = clock()
    # A watch pass on warm caches loads the few files that changed while the server
    # computes the tables' fingerprint (two scans: most of such a pass's wall time).
    overlap = reuse and caches.actual is not None and git_ref(settings.source) is None
    with _collector_paused():
        desired = (
            None
            if recorded or overlap
            else load_desired(
                settings, caches, now=clock_started, changed=changed_files if reuse else None
            )
        )
        with engine.begin() as connection:
            hold_apply_lock(connection)
            # First: what the cached state is compared with (store.change_counts),
            # after taking what our scheduler wrote (so that the counts see all of it).
            counts, own = _read_counts(connection, caches, reuse=reuse) if keep else (None, None)
            early = None
            if overlap:
                desired, early = _load_beside_fingerprint(
                    connection,
                    settings,
                    caches,
                    now=clock_started,
                    changed=changed_files,
                    counts=counts,
                    own=own,
                )
            now = clock()
            if keep:
                actual, fingerprint = _read_actual_cached(
                    connection, caches, reuse=reuse, early=early, counts=counts, own=own
                )
            else:
                actual, fingerprint = read_actual_once(connection, caches), None
            if desired is None:
                desired = load_desired_recorded(
                    connection, settings, caches, now=clock_started, ahead=ahead
                )
            tracked = Tracked(fingerprint, counts, actual)
            known = tracked if fingerprint is not None or counts is not None else None
            plan = make_plan(
                desired,
                actual,
                now=now,
                max_delete_fraction=settings.max_delete_fraction,
                allow_mass_delete=allow_mass_delete,
                preview_fires=not apply,
                previous=caches.plan_basis,
                memory=caches.memory,
            )
            caches.plan_basis = plan.basis
            if caches.compact:
                _forget_specs(plan, desired)
            outcome = _check(plan, expected_plan_hash, apply, allow_invalid)
            if settling and (plan.has_changes or plan.quarantined):
                # Read only so far: what was read stays true of the tables. The lock
                # is released (rolled back) while the tree settles.
                caches.actual = (fingerprint, actual) if known is not None else None
                caches.counts = counts if known is not None else None
                raise _Settling(plan)
            records = _FileRecording(connection, settings, caches, now=now)
            if apply and outcome == ReconcileOutcome.APPLIED:
                with write_guard(plan) if write_guard is not None else nullcontext():
                    known = _apply(
                        connection,
                        plan,
                        known,
                        caches if keep else None,
                        now,
                        caches.memory,
                        # A one-shot pass only: the daemon writes its records after
                        # its scheduler rows, outside `write_guard` (its scheduler
                        # does not wait for them).
                        meanwhile=records.write if not keep else lambda: None,
                        beside=(lambda: planned(plan)) if planned is not None else lambda: None,
                    )
                    notify_applied(connection, plan.plan_hash)
                    if before_commit is not None:
                        before_commit(connection, plan)
            if apply and outcome in APPLIED_OUTCOMES:
                records.write()
            if apply and outcome in APPLIED_OUTCOMES and caches.decoded_rows:
                _record_rows_in_sync(connection, plan, actual, caches.decoded_rows)
            if record and outcome in SETTLED_OUTCOMES:
                replace_quarantine(connection, plan.quarantined, now=now)
            if record:
                _record(connection, plan, trigger, outcome, started, now, instance)
        # Committed: the next pass may trust it.
        caches.actual = (known.fingerprint, known.actual) if known is not None else None
        caches.counts = known.counts if known is not None else None
        records.committed()
    duration = time.monotonic() - started
    _observe(plan, trigger, outcome, duration, applied=apply)
    return ReconcileResult(plan=plan, outcome=outcome, duration=duration)


def _read_counts(
    connection: Connection, caches: ReconcileCaches, *, reuse: bool
) -> tuple[ChangeCounts | None, list[WriteBack] | None]:
    """The change counts, and the write-backs of our own scheduler that explain their
    moves since the cached state (`_own_writes`; None: not so, or a pass that reads
    everything anyway). The log is taken BEFORE the counts are read: every write in it
    has committed, so the counts' snapshot sees it (store.own_writes)."""
    writes = caches.own_writes.take()
    known, caches.counts_known = caches.counts_known, False  # raised: not known again
    counts = read_change_counts(connection, known=known)
    caches.counts_known = counts is not None
    return counts, (_own_writes(caches, counts, writes) if reuse else None)


def _forget_specs(plan: Plan, desired: DesiredState) -> None:
    """Drop the specs the plan built for the jobs it changes (RecordedSpec: built when
    read, and kept): a daemon that applied 100,000 jobs would hold them all for good.
    The jobs it found in sync built none to keep (core.state.transient)."""
    for change in plan.changes:
        wanted = desired.jobs.get(change.job)
        if wanted is not None and isinstance(wanted.found, RecordedSpec):
            wanted.found.forget()


class _FileRecording:
    """`_record_files` once per pass, for the working tree only: while a one-shot apply
    waits for its new scheduler rows (engine.apply's `meanwhile`), or after the apply.
    The caches learn what was written only once the pass has committed (`committed`):
    a pass that fails after writing them rolls the records back, and the next pass
    must write them again, not find them in the caches."""

    def __init__(
        self, connection: Connection, settings: Settings, caches: ReconcileCaches, *, now: datetime
    ) -> None:
        self._call = (connection, settings, caches, now)
        self._done = git_ref(settings.source) is not None  # a commit's tree: no records
        self._written: _Recorded | None = None

    def write(self) -> None:
        if not self._done:
            self._done = True
            connection, settings, caches, now = self._call
            self._written = _record_files(connection, settings, caches, now=now)

    def committed(self) -> None:
        caches = self._call[2]
        if self._written is not None:
            caches.records, caches.recorded, caches.records_of = self._written


# What `_record_files` wrote: the records, the load result they match, the record made
# of each file outcome (ReconcileCaches.records, .recorded, .records_of).
_Recorded = tuple[
    dict[str, FileRecord], LoadResult, dict[int, tuple[FileOutcome, str, FileRecord | None]]
]


def _record_files(
    connection: Connection, settings: Settings, caches: ReconcileCaches, *, now: datetime
) -> _Recorded | None:
    """Make `job_files` hold the record of every file this pass loaded (in the pass's
    transaction: what a later one-shot pass reads was true of a committed pass). Returns
    what the caches learn once the pass commits; None: nothing written."""
    loaded = caches.loaded[0] if caches.loaded is not None else None
    if loaded is None or loaded is caches.recorded:
        return None  # nothing loaded anew since the records were last written
    in_table = caches.records
    if in_table is None:
        in_table = read_file_records(connection)
    context = validation_context(settings)
    wanted, made = {}, {}
    for outcome in loaded.outcomes:
        known = caches.records_of.get(id(outcome))
        if known is None or known[0] is not outcome or known[1] != context:
            known = (outcome, context, record_of(outcome, context))
        made[id(outcome)] = known
        if known[2] is not None:
            wanted[known[2].path] = known[2]
    write_file_records(connection, wanted, known=in_table, now=now)
    return wanted, loaded, made


def _record_rows_in_sync(
    connection: Connection, plan: Plan, actual: ActualState, decoded: Mapping[str, str]
) -> None:
    """Record the scheduler rows this one-shot pass decoded and its plan found in sync
    (so that the next one-shot pass does not decode them again): rows of jobs the plan
    examined (a one-shot plan examines all) and left alone, whose drift check ran (a
    completed job's row is not checked)."""
    touched = set(touched_jobs(plan))
    in_sync = {}
    for name, digest in decoded.items():
        have = actual.inventory.get(name)
        if have is not None and name not in touched and have.status != JobStatus.COMPLETED:
            in_sync[name] = (digest, (have.spec_hash, have.revision))
    record_rows_in_sync(connection, in_sync)


@dataclass(frozen=True)
class Tracked:
    """The actual state a pass planned against, and what vouches for it: the tables'
    fingerprint (PostgreSQL) and change counts (where the triggers are) it matches."""

    fingerprint: Fingerprint | None
    counts: ChangeCounts | None
    actual: ActualState


def _apply(
    connection: Connection,
    plan: Plan,
    known: Tracked | None,
    caches: ReconcileCaches | None,
    now: datetime,
    memory: CoreMemory,
    *,
    meanwhile: Callable[[], object] = lambda: None,
    beside: Callable[[], object] = lambda: None,
) -> Tracked | None:
    """Write the plan. With `known` (what it was planned against), return the state
    after the write and what vouches for it; None: not tracked. With `caches`, they
    learn what was written (so that no later pass decodes it again). `memory`: the one
    the plan was made with (its first fire times are looked up, not recomputed).
    `meanwhile`, `beside`: see apply_plan.

    The fingerprint moves by exactly what this pass wrote: the rows it touched are
    summarised just before and just after writing. A concurrent writer's change to any
    row makes the real fingerprint differ from the one computed, never agree with it.
    The counts move by one for each table this transaction wrote (store.change_counts):
    a concurrent writer's commit adds its own, and the real counts differ. So both are
    computed, never read: this pass's writes to those tables happen here, and only here.
    Without a fingerprint (SQLite) a pass that wrote tracks nothing."""
    touched = touched_jobs(plan)
    if len(touched) > TRACKED_CHANGES_MAX or (known is not None and known.fingerprint is None):
        known = None  # a bulk change, or SQLite: the next pass reads everything instead
    before = read_fingerprint(connection, touched) if known is not None else None
    rows = apply_plan(
        connection,
        plan,
        now=now,
        triggers=memory.triggers,
        rows_wanted=caches is not None,
        meanwhile=meanwhile,
        beside=beside,
    )
    record_job_events(connection, plan, now=now)
    if caches is None:
        return None
    written = caches.rows.remember(rows)
    caches.reread.update(touched)  # the decoder's last read does not hold them
    for change in plan.changes:
        if change.target is not None:
            caches.essences.put(change.target.spec_hash, change.target.essence)
    if known is None or before is None or known.fingerprint is None:
        return None
    after = read_fingerprint(connection, touched)
    tables = written_here(connection) if known.counts is not None else None
    return Tracked(
        known.fingerprint.moved(before, after),
        known.counts.plus(tables) if known.counts is not None and tables is not None else None,
        actual_after(known.actual, plan, written),
    )


def record_failed_pass(
    engine: Engine,
    *,
    trigger: Trigger,
    error: BaseException,
    started: float,
    instance: str | None = None,
    revision: Revision | None = None,
    write: bool = True,
) -> None:
    """Count a pass that failed and, with `write`, record it (its own transaction: the
    pass's was rolled back). Never raises: the caller re-raises the pass's error."""
    if write:
        try:
            with engine.begin() as connection:
                record_reconcile_run(
                    connection,
                    trigger=trigger,
                    instance=instance,
                    started_at=datetime.now(UTC),
                    finished_at=datetime.now(UTC),
                    duration_seconds=time.monotonic() - started,
                    outcome=ReconcileOutcome.ERROR,
                    revision=revision.commit if revision else None,
                    errors=[f"{type(error).__name__}: {error}"],
                )
        except Exception:
            log.warning("could not record the failed reconcile pass", exc_info=True)
    metrics.RECONCILE_RUNS.labels(trigger=trigger, outcome=PassResult.FAILED).inc()
    metrics.RECONCILE_ERRORS.labels(kind=_error_kind(error)).inc()


def _error_kind(error: BaseException) -> ErrorKind:
    if isinstance(error, TransientError | sa.exc.OperationalError | OSError):
        return ErrorKind.TRANSIENT
    return ErrorKind.BUG


def _check(
    plan: Plan, expected_plan_hash: str | None, apply: bool, allow_invalid: bool
) -> ReconcileOutcome:
    if plan.quarantined and not allow_invalid:
        return ReconcileOutcome.INVALID
    if expected_plan_hash is not None and expected_plan_hash != plan.plan_hash:
        return ReconcileOutcome.STALE
    if plan.refused:
        return ReconcileOutcome.REFUSED
    if not plan.has_changes:
        return ReconcileOutcome.NO_CHANGES
    return ReconcileOutcome.APPLIED if apply else ReconcileOutcome.PLANNED


def _record(
    connection: Connection,
    plan: Plan,
    trigger: Trigger,
    outcome: ReconcileOutcome,
    started: float,
    now: datetime,
    instance: str | None,
) -> None:
    record_reconcile_run(
        connection,
        trigger=trigger,
        instance=instance,
        started_at=now,
        finished_at=datetime.now(UTC),
        duration_seconds=time.monotonic() - started,
        outcome=outcome,
        revision=plan.revision.commit,
        revision_dirty=plan.revision.dirty,
        plan_hash=plan.plan_hash,
        **_counts(plan.summary),
        quarantined_files=len(plan.quarantined),
        foreign_rows=len(plan.foreign),
        errors=_errors(plan, outcome),
    )


def _counts(summary: Mapping[str, int]) -> dict[str, int]:
    """The pass's changes as `reconcile_runs` counts them, by column."""
    counts = dict.fromkeys(COUNT_COLUMNS.values(), 0)
    for action, column in COUNT_COLUMNS.items():
        counts[column] += summary.get(action, 0)
    return counts


def _errors(plan: Plan, outcome: ReconcileOutcome) -> list[str]:
    if outcome == ReconcileOutcome.INVALID:
        return [
            f"{len(plan.quarantined)} quarantined files: " + ", ".join(sorted(plan.quarantined))
        ]
    if outcome == ReconcileOutcome.STALE:
        return ["the plan is not the approved one"]
    return [plan.refused] if plan.refused else []


def _observe(
    plan: Plan, trigger: Trigger, outcome: ReconcileOutcome, duration: float, *, applied: bool
) -> None:
    metrics.RECONCILE_RUNS.labels(trigger=trigger, outcome=outcome.result).inc()
    metrics.RECONCILE_DURATION.observe(duration)
    metrics.QUARANTINED_FILES.set(len(plan.quarantined))
    metrics.FOREIGN_ROWS.set(len(plan.foreign))
    if outcome not in (ReconcileOutcome.STALE, ReconcileOutcome.INVALID):
        # What a manual-sync daemon leaves for `reconcile apply`; 0 once applied.
        pending = {} if applied and outcome == ReconcileOutcome.APPLIED else plan.summary
        for action in metrics.CHANGE_ACTIONS:
            metrics.PENDING_CHANGES.labels(action=action).set(pending.get(action, 0))
    if outcome == ReconcileOutcome.REFUSED:
        metrics.RECONCILE_ERRORS.labels(kind=ErrorKind.REFUSED).inc()
    if applied and outcome == ReconcileOutcome.APPLIED:
        for done, count in plan.summary.items():
            if count:
                metrics.RECONCILE_CHANGES.labels(action=done).inc(count)
        metrics.DRIFT_REPAIRS.inc(plan.summary.get(Action.REPAIR, 0))
    if outcome in SETTLED_OUTCOMES:
        metrics.LAST_RECONCILE_SUCCESS.set(time.time())
