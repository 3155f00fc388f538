"""Builders for pure plan tests: specs, desired and actual states, without a database."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

from reconciler.core.plan import Plan, make_plan
from reconciler.core.state import (
    ActualState,
    DesiredJob,
    DesiredState,
    InventoryRow,
    Revision,
    SchedulerRow,
    scheduler_job,
)
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import JobSpec
from reconciler.store.job_state import pickle_job
from reconciler.store.scheduler_rows import RowDecoder

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
REVISION = Revision(commit="0123456789abcdef0123456789abcdef01234567", dirty=False)


def spec(name: str, **fields: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": name,
        "task": "reconciler.tasks.example_task",
        "schedule": {"cron": "*/5 * * * *"},
    }
    data.update(fields)
    return JobSpec.model_validate(data)


def desired(
    *specs: JobSpec,
    quarantined: dict[str, tuple[Diagnostic, ...]] | None = None,
    sources: dict[str, str] | None = None,
) -> DesiredState:
    sources = sources or {}
    jobs = {
        s.name: DesiredJob.of(s, source=sources.get(s.name, f"{s.name}.yaml"), line=1)
        for s in specs
    }
    return DesiredState(jobs=jobs, quarantined=quarantined or {}, revision=REVISION)


def applied(
    *specs: JobSpec, sources: dict[str, str] | None = None, rows: bool = True
) -> ActualState:
    """The actual state right after applying `specs` (inventory + scheduler rows)."""
    sources = sources or {}
    inventory = {}
    scheduler = {}
    decoder = RowDecoder()
    for s in specs:
        job = DesiredJob.of(s, source=sources.get(s.name, f"{s.name}.yaml"))
        status = "paused" if s.paused else "active"
        inventory[s.name] = InventoryRow(
            name=s.name,
            essence=job.essence,
            spec_hash=job.spec_hash,
            status=status,
            source_file=job.source,
            source_line=1,
            revision=REVISION.commit,
        )
        if rows:
            expected = scheduler_job(s, spec_hash=job.spec_hash, revision=REVISION.commit)
            next_run = None if s.paused else NOW
            scheduler[s.name] = decoder.decode(
                s.name, None if s.paused else NOW.timestamp(), pickle_job(expected, next_run)
            )
    return ActualState(inventory=inventory, scheduler=scheduler)


def with_rows(actual: ActualState, **rows: SchedulerRow | None) -> ActualState:
    scheduler = dict(actual.scheduler)
    for row_id, row in rows.items():
        if row is None:
            scheduler.pop(row_id, None)
        else:
            scheduler[row_id] = row
    return ActualState(inventory=actual.inventory, scheduler=scheduler)


def foreign_row(row_id: str) -> SchedulerRow:
    state = {"func": "someone.else:run", "trigger": None, "kwargs": {}}
    return RowDecoder().decode(row_id, 1.0, pickle.dumps(state))


def plan(desired_state: DesiredState, actual: ActualState, **options: Any) -> Plan:
    return make_plan(desired_state, actual, now=NOW, **options)
