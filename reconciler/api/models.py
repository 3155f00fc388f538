"""Response models of the read-only API: the published contract, kept apart from the tables.

The routes build plain dicts (fast) and serialise them with `pydantic_core.to_json`; these
models describe those dicts for OpenAPI, and the tests validate every body against them
(the schemathesis run checks every documented response). Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A job's two status words, described once for the list and the detail.
STATUS_DESCRIPTION = "Inventory status: active, paused or completed"
STATE_DESCRIPTION = (
    "One word: quarantined (its file fails to validate; the last applied spec runs), "
    "failing (last run failed or expired), late (next fire over 60 s past), paused, "
    "completed, active"
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Out):
    """An error, as an RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(description="URI naming the kind of problem; about:blank for plain HTTP")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors: loc, msg, type (the input is never echoed)"
    )


class ScheduleSummary(_Out):
    kind: str = Field(description="cron, interval or date")
    value: str = Field(description="The cron expression, interval (e.g. 1h30m) or date")
    timezone: str


class JobItem(_Out):
    name: str
    task: str
    queue: str
    status: str = Field(description=STATUS_DESCRIPTION)
    state: str = Field(description=STATE_DESCRIPTION)
    quarantined: bool
    labels: dict[str, str]
    schedule: ScheduleSummary | None
    next_fire_time: datetime | None = Field(
        description="From apscheduler_jobs.next_run_time; null when paused or unscheduled"
    )
    source_file: str
    revision: str | None
    updated_at: datetime


class JobList(_Out):
    items: list[JobItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )
    total: int | None = Field(
        default=None, description="Matching jobs in all pages; only with include_total=true"
    )


class Run(_Out):
    id: str = Field(description="The fire id, which is also the Celery task id")
    job: str
    scheduled_time: datetime
    status: str
    reason: str | None
    task: str
    queue: str
    revision: str | None
    fired_at: datetime | None
    published_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lateness_seconds: float | None
    duration_seconds: float | None = Field(description="finished_at - started_at")
    retries: int
    duplicates: int
    worker: str | None
    result_summary: str | None = Field(description="Redacted")
    error: str | None = Field(description="Redacted")


class RunList(_Out):
    items: list[Run]
    next_cursor: str | None


class QuarantineInfo(_Out):
    path: str
    since: datetime
    last_seen: datetime
    diagnostics: Any = Field(description="The parse/validation errors of the file (redacted)")


class Drift(_Out):
    code: str = Field(
        description="missing_scheduler_row, scheduler_paused (job active), "
        "scheduler_active (job paused), unexpected_scheduler_row (job completed); the "
        "vocabulary of reconciler.core.status.Drift"
    )
    detail: str


class NextFire(_Out):
    at: datetime = Field(description="On the job's zone's clock, with its UTC offset")
    dst: str | None = Field(
        description="Set when DST placed it: gap-next, gap-shift, repeat-first, repeat-second"
    )


class JobDetail(_Out):
    name: str
    task: str
    queue: str
    status: str = Field(description=STATUS_DESCRIPTION)
    state: str = Field(description=STATE_DESCRIPTION)
    labels: dict[str, str]
    schedule: ScheduleSummary | None
    spec: dict[str, Any] = Field(description="The applied spec; secret-looking values redacted")
    spec_hash: str
    source_file: str
    source_line: int
    revision: str | None
    revision_dirty: bool
    generation: int
    created_at: datetime
    updated_at: datetime
    next_fire_time: datetime | None
    next_fires: list[NextFire] = Field(
        description="The next fires from next_fire_time on, by the engine the daemon runs "
        "(empty when paused, completed or unscheduled)"
    )
    scheduled: bool = Field(description="An apscheduler_jobs row exists for the job")
    last_run: Run | None
    run_counts: dict[str, int] = Field(description="Runs in the ledger by status")
    quarantine: QuarantineInfo | None = Field(
        description="Set when the job's source file is quarantined (the job keeps its last spec)"
    )
    drift: Drift | None


class Slot(_Out):
    slot: datetime = Field(description="A time the schedule defines (UTC)")
    fate: Literal["ran", "missed", "coalesced", "skipped", "absent", "not_yet_due"]
    reason: str = Field(description="Why, for people (never parse it)")
    run_id: str | None = Field(description="The ledger row of this slot, if any")
    outcome: str | None = Field(description="The ledger row's status, if any")


class SlotList(_Out):
    job: str
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    items: list[Slot] = Field(description="Oldest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class CeleryResult(_Out):
    task_id: str
    state: str = Field(description="Celery state; PENDING only when the ledger knows the id")
    ready: bool
    successful: bool
    date_done: datetime | None
    result: Any = Field(description="The task's return value (redacted), or its error")


class TaskInfo(CeleryResult):
    run: Run | None = Field(description="The ledger row of this fire, if any")


class Instance(_Out):
    instance: str
    role: str
    epoch: int
    started_at: datetime
    heartbeat_at: datetime
    fresh: bool = Field(description="Heartbeat younger than the staleness limit")


class ReconcileRun(_Out):
    id: int
    trigger: str
    instance: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    outcome: str
    revision: str | None
    revision_dirty: bool | None
    plan_hash: str | None
    changes: dict[str, int] = Field(
        description="added, updated, renamed, paused, resumed, removed, repaired"
    )
    quarantined_files: int
    foreign_rows: int
    errors: Any


class Leader(_Out):
    state: Literal["alive", "stale", "none"] = Field(
        description="alive: the leader heartbeats; stale: its last heartbeat is over 15 s "
        "old; none: no leader row"
    )
    instance: str | None
    epoch: int | None = Field(description="The fencing token: the highest epoch leads")
    heartbeat_at: datetime | None


class DriftCounts(_Out):
    missing_scheduler_row: int = Field(description="Jobs of ours with no apscheduler_jobs row")
    scheduler_paused: int = Field(description="Active jobs whose scheduler row is paused")
    scheduler_active: int = Field(description="Paused jobs whose scheduler row will fire")
    unexpected_scheduler_row: int = Field(description="Completed jobs still due in the scheduler")
    foreign_scheduler_row: int = Field(description="apscheduler_jobs rows we do not own")


class DriftedJob(_Out):
    job: str
    drift: str


class JobBrief(_Out):
    job: str
    state: str
    next_fire: datetime | None
    last_run: str | None
    last_run_status: str | None
    last_run_slot: datetime | None


class ReconcilerStatus(_Out):
    leader: Leader
    instances: list[Instance]
    applied_revision: str | None = Field(
        description="Revision of the newest reconcile pass that applied or found no changes"
    )
    applied_revision_dirty: bool
    last_reconcile: ReconcileRun | None
    reconcile_runs: list[ReconcileRun] = Field(description="Newest first")
    jobs_by_status: dict[str, int] = Field(description="Inventory status: active, paused ...")
    jobs_by_state: dict[str, int] = Field(
        description="One word per job: quarantined, failing, late, paused, completed, active"
    )
    quarantined_files: list[QuarantineInfo]
    drift: DriftCounts
    drifted_jobs: list[DriftedJob]
    failing_jobs: list[JobBrief]
    late_jobs: list[JobBrief]
    pending_changes: dict[str, int] = Field(
        description="Changes a RECONCILER_SYNC=manual daemon found and left for `reconcile "
        "apply`, by action (its newest pass); {} when nothing is pending"
    )


class Health(_Out):
    status: str
    version: str


class Check(_Out):
    ok: bool
    latency_ms: float
    error: str | None = None


class Readiness(_Out):
    status: str = Field(description="ready or unready")
    checks: dict[str, Check]
