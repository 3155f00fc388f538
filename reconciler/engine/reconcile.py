"""reconcile_once: load the files, read the state, plan, guard, apply, record.

One pass is level-triggered: it computes the full desired and the full actual state,
however it was woken. Reading the actual state, planning and applying happen in ONE
database transaction, under a lock, so two appliers (the daemon and a CLI `apply`)
serialise, and a crash at any point leaves the state as it was: the next pass converges.
Every pass, whatever its outcome, is recorded in `reconcile_runs` (Flux's defer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconciler import metrics
from reconciler.core.plan import Plan, make_plan
from reconciler.core.state import ActualState, DesiredJob, DesiredState, Revision
from reconciler.engine.apply import apply_plan
from reconciler.engine.gitrev import read_revision
from reconciler.errors import RefusedError, StalePlanError, TransientError
from reconciler.settings import Settings
from reconciler.spec.loader import LoadCache, load_jobs
from reconciler.store.inventory import (
    EssenceCache,
    read_inventory,
    record_reconcile_run,
    replace_quarantine,
)
from reconciler.store.scheduler_rows import RowDecoder, read_scheduler_rows

log = logging.getLogger(__name__)
Trigger = Literal["cli", "watch", "resync", "startup"]
Outcome = Literal["applied", "no_changes", "planned", "refused", "stale", "error"]
# Any constant shared by every process of a deployment: the key of the apply lock.
APPLY_LOCK_KEY = 0x7265636F6E63  # "reconc"
NOTIFY_CHANNEL = "reconciler_changed"


@dataclass
class ReconcileCaches:
    """What a long-running process keeps between passes so that a pass after nothing
    changed re-parses no file and unpickles no row. A CLI run starts empty."""

    files: LoadCache = field(default_factory=LoadCache)
    # LoadedJob -> DesiredJob (hash and essence computed once per parsed document). Keyed
    # by id() while the LoadedJob itself is held in the value, so ids cannot be reused.
    desired: dict[int, tuple[object, DesiredJob]] = field(default_factory=dict)
    essences: EssenceCache = field(default_factory=EssenceCache)
    rows: RowDecoder = field(default_factory=RowDecoder)


@dataclass(frozen=True)
class ReconcileResult:
    plan: Plan
    outcome: Outcome
    duration: float


def load_desired(settings: Settings, caches: ReconcileCaches, *, now: datetime) -> DesiredState:
    loaded = load_jobs(settings.jobs_dir, settings=settings, now=now, cache=caches.files)
    known, fresh = caches.desired, {}
    for job in loaded.jobs:
        entry = known.get(id(job))
        if entry is None or entry[0] is not job:
            entry = (job, DesiredJob.of(job.spec, source=job.source, line=job.line))
        fresh[id(job)] = entry
    caches.desired = fresh
    jobs = {entry[1].name: entry[1] for entry in fresh.values()}
    return DesiredState(
        jobs=jobs,
        quarantined=dict(loaded.quarantined),
        revision=read_revision(settings.jobs_dir),
        files=loaded.files,
    )


def read_actual(connection: Connection, caches: ReconcileCaches) -> ActualState:
    """Inventory and scheduler rows. A database without our schema holds nothing yet:
    a plan against it shows every job as an add (apply creates the schema first)."""
    if not sa.inspect(connection).has_table("scheduled_jobs"):
        return ActualState(inventory={}, scheduler={})
    return ActualState(
        inventory=read_inventory(connection, caches.essences),
        scheduler=read_scheduler_rows(connection, caches.rows),
    )


def reconcile_once(
    engine: Engine,
    settings: Settings,
    *,
    trigger: Trigger,
    apply: bool = True,
    allow_mass_delete: bool = False,
    expected_plan_hash: str | None = None,
    caches: ReconcileCaches | None = None,
    instance: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    before_commit: Callable[[Connection, Plan], None] | None = None,
) -> ReconcileResult:
    """One full pass. `apply=False` is a dry run (`reconcile plan`): nothing is written.

    Raises RefusedError (a safety guard said no; a dry run returns outcome "refused"
    instead, so the plan can still be shown), StalePlanError (`expected_plan_hash`
    no longer matches), SpecError never (broken files are quarantined, not raised),
    and TransientError/SQLAlchemy errors when a service fails. `before_commit` is a test
    seam (kill points) and the daemon's hook to wake its scheduler.
    """
    caches = caches or ReconcileCaches()
    started, clock_started = time.monotonic(), clock()
    desired = load_desired(settings, caches, now=clock_started)
    with engine.begin() as connection:
        _lock(connection)
        now = clock()
        plan = make_plan(
            desired,
            read_actual(connection, caches),
            now=now,
            max_delete_fraction=settings.max_delete_fraction,
            allow_mass_delete=allow_mass_delete,
            preview_fires=not apply,
        )
        outcome = _check(plan, expected_plan_hash, apply)
        if apply and outcome == "applied":
            written = apply_plan(connection, plan, now=now)
            caches.rows.remember(written)
            for change in plan.changes:
                if change.target is not None:
                    caches.essences.put(change.target.spec_hash, change.target.essence)
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, plan.plan_hash)))
            if before_commit is not None:
                before_commit(connection, plan)
        if apply and outcome in ("applied", "no_changes"):
            replace_quarantine(connection, plan.quarantined, now=now)
        if apply:
            _record(connection, plan, trigger, outcome, started, now, instance)
    duration = time.monotonic() - started
    _observe(plan, trigger, outcome, duration, applied=apply)
    if apply and outcome == "refused":
        raise RefusedError(plan.refused or "refused")
    if outcome == "stale":
        raise StalePlanError(
            f"the state moved since the preview: plan hash is now {plan.plan_hash}, "
            f"not {expected_plan_hash}; run `reconcile plan` again"
        )
    return ReconcileResult(plan=plan, outcome=outcome, duration=duration)


def record_failure(
    engine: Engine,
    *,
    trigger: Trigger,
    error: BaseException,
    started: float,
    instance: str | None = None,
    revision: Revision | None = None,
) -> None:
    """Record a pass that failed before it could record itself. Never raises."""
    try:
        with engine.begin() as connection:
            record_reconcile_run(
                connection,
                trigger=trigger,
                instance=instance,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
                duration_seconds=time.monotonic() - started,
                outcome="error",
                revision=revision.commit if revision else None,
                errors=[f"{type(error).__name__}: {error}"],
            )
    except Exception:
        log.warning("could not record the failed reconcile pass", exc_info=True)
    metrics.RECONCILE_RUNS.labels(trigger=trigger, outcome="failed").inc()
    metrics.RECONCILE_ERRORS.labels(kind=_error_kind(error)).inc()


# The metric's closed vocabulary (reconciler.metrics.RECONCILE_OUTCOMES).
_METRIC_OUTCOME: dict[Outcome, str] = {
    "applied": "succeeded",
    "no_changes": "succeeded",
    "planned": "succeeded",
    "refused": "refused",
    "stale": "failed",
    "error": "failed",
}


def _error_kind(error: BaseException) -> str:
    if isinstance(error, TransientError | sa.exc.OperationalError | OSError):
        return "transient"
    return "bug"


def _lock(connection: Connection) -> None:
    # PostgreSQL: one applier at a time across processes, released at commit/rollback.
    # SQLite serialises writers itself (one writer per file, with busy_timeout).
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(APPLY_LOCK_KEY)))


def _check(plan: Plan, expected_plan_hash: str | None, apply: bool) -> Outcome:
    if expected_plan_hash is not None and expected_plan_hash != plan.plan_hash:
        return "stale"
    if plan.refused:
        return "refused"
    if not plan.has_changes:
        return "no_changes"
    return "applied" if apply else "planned"


def _record(
    connection: Connection,
    plan: Plan,
    trigger: Trigger,
    outcome: Outcome,
    started: float,
    now: datetime,
    instance: str | None,
) -> None:
    summary = plan.summary
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
        added=summary.get("add", 0),
        updated=summary.get("update", 0),
        paused=summary.get("pause", 0),
        resumed=summary.get("resume", 0),
        removed=summary.get("remove", 0),
        repaired=summary.get("repair", 0),
        quarantined_files=len(plan.quarantined),
        foreign_rows=len(plan.foreign),
        errors=[plan.refused] if plan.refused else [],
    )


def _observe(
    plan: Plan, trigger: Trigger, outcome: Outcome, duration: float, *, applied: bool
) -> None:
    metrics.RECONCILE_RUNS.labels(trigger=trigger, outcome=_METRIC_OUTCOME[outcome]).inc()
    metrics.RECONCILE_DURATION.observe(duration)
    metrics.QUARANTINED_FILES.set(len(plan.quarantined))
    metrics.FOREIGN_ROWS.set(len(plan.foreign))
    if outcome == "refused":
        metrics.RECONCILE_ERRORS.labels(kind="refused").inc()
    if applied and outcome == "applied":
        for action, count in plan.summary.items():
            if count:
                metrics.RECONCILE_CHANGES.labels(action=action).inc(count)
        metrics.DRIFT_REPAIRS.inc(plan.summary.get("repair", 0))
    if outcome in ("applied", "no_changes", "planned"):
        metrics.LAST_RECONCILE_SUCCESS.set(time.time())
