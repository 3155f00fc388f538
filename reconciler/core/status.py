"""The one read model of the reconciler's state: what `reconcile status`, `get jobs`,
`describe job`, `GET /api/v1/reconciler`, `GET /api/v1/jobs` and the daemon's gauges
show. Pure: rows in (read by `reconciler.store.status`), values out.

One rule for each fact, so that every reader agrees:
- the leader is the `leader` row with the highest epoch (the fencing token); it is
  `alive` while its heartbeat is younger than LEADER_STALE_AFTER, else `stale`; no
  leader row at all is `none`;
- the applied revision is the revision of the newest reconcile pass that applied or
  found nothing to change (APPLIED_OUTCOMES);
- drift has one vocabulary (`Drift`), per job and in the counts;
- a job's state (`JobState`) is one word derived from its inventory status, its file's
  quarantine, its last run and its next fire.

The closed vocabularies (`Drift`, `JobState`, `LeaderState` ...) are the enums of
`reconciler.core.vocabulary`; renderers and metrics import them from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reconciler.core.moments import as_utc, from_epoch
from reconciler.core.vocabulary import (
    COUNT_COLUMNS,
    FAILED_RUN_STATUSES,
    Drift,
    JobState,
    JobStatus,
    LeaderState,
    ReconcileOutcome,
    Role,
)

# The leader heartbeats every second; a standby every 5 s. 15 s without one: stale.
LEADER_STALE_AFTER = timedelta(seconds=15)
# An active job whose next fire is this far in the past is late (nothing fired it).
LATE_AFTER = timedelta(seconds=60)


DRIFT_DETAILS = {
    Drift.MISSING_SCHEDULER_ROW: "the job has no apscheduler_jobs row: it will not fire "
    "until repaired",
    Drift.SCHEDULER_PAUSED: "the job is active but its scheduler row is paused",
    Drift.SCHEDULER_ACTIVE: "the job is paused but its scheduler row will fire",
    Drift.UNEXPECTED_SCHEDULER_ROW: "the job is completed but the scheduler still has it due",
    Drift.FOREIGN_SCHEDULER_ROW: "an apscheduler_jobs row no job file declares (left alone)",
}


def job_drift(status: str, *, scheduled: bool, next_run_time: float | None) -> Drift | None:
    """How the scheduler row disagrees with the job's inventory status; None: they agree.
    A completed job legitimately has no row."""
    if status == JobStatus.COMPLETED:
        return Drift.UNEXPECTED_SCHEDULER_ROW if scheduled and next_run_time is not None else None
    if not scheduled:
        return Drift.MISSING_SCHEDULER_ROW
    if status == JobStatus.ACTIVE and next_run_time is None:
        return Drift.SCHEDULER_PAUSED
    if status == JobStatus.PAUSED and next_run_time is not None:
        return Drift.SCHEDULER_ACTIVE
    return None


def late_before(now: datetime) -> float:
    """A next fire (epoch seconds) before this is late at `now`."""
    return now.timestamp() - LATE_AFTER.total_seconds()


def job_state(
    *,
    status: str,
    quarantined: bool,
    last_run_status: str | None,
    next_run_time: float | None,
    now: datetime,
) -> JobState:
    return state_of(
        status=status,
        quarantined=quarantined,
        failed=last_run_status in FAILED_RUN_STATUSES,
        overdue=next_run_time is not None and next_run_time < late_before(now),
    )


def state_of(*, status: str, quarantined: bool, failed: bool, overdue: bool) -> JobState:
    """The state from the facts it depends on: `failed`, the newest run failed or expired;
    `overdue`, the next fire is before `late_before(now)`. `job_state` for one job's
    values, `build_status` for a group of jobs the database counted."""
    if quarantined:
        return JobState.QUARANTINED
    if status == JobStatus.PAUSED:
        return JobState.PAUSED
    if status == JobStatus.COMPLETED:
        return JobState.COMPLETED
    if failed:
        return JobState.FAILING
    if overdue:
        return JobState.LATE
    return JobState.ACTIVE


@dataclass(frozen=True, kw_only=True)
class JobRow:
    """One job as `reconciler.store.status` reads it (the inventory joined with its
    scheduler row, its file's quarantine and its newest run)."""

    name: str
    status: str
    spec_hash: str
    task: str
    queue: str
    labels: Mapping[str, str]
    schedule: Any  # the spec's `schedule` (JSON)
    timezone: str | None
    source_file: str
    revision: str | None
    updated_at: datetime | None
    scheduled: bool  # it has an apscheduler_jobs row
    next_run_time: float | None
    quarantined: bool
    last_run_id: str | None = None
    last_run_status: str | None = None
    last_run_slot: datetime | None = None
    last_run_finished: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class JobView:
    row: JobRow
    state: JobState
    drift: Drift | None
    next_fire: datetime | None


def view_job(row: JobRow, *, now: datetime) -> JobView:
    return JobView(
        row=row,
        state=job_state(
            status=row.status,
            quarantined=row.quarantined,
            last_run_status=row.last_run_status,
            next_run_time=row.next_run_time if row.status == JobStatus.ACTIVE else None,
            now=now,
        ),
        drift=job_drift(row.status, scheduled=row.scheduled, next_run_time=row.next_run_time),
        next_fire=from_epoch(row.next_run_time) if row.status == JobStatus.ACTIVE else None,
    )


@dataclass(frozen=True, kw_only=True)
class JobGroup:
    """`jobs` jobs the database counted together: the same status and the same facts
    their state and drift depend on (`overdue`: an active job whose next fire is before
    `late_before(now)`; `failed`: its newest run failed or expired, read only for a job
    not quarantined, paused or completed, false otherwise)."""

    status: str
    quarantined: bool
    scheduled: bool
    due: bool  # its scheduler row has a next fire
    overdue: bool
    failed: bool
    jobs: int


@dataclass(frozen=True, kw_only=True)
class StatusRows:
    """Everything the summary needs, as the store read it (plain dicts per row), at one
    `now`. The jobs come in two parts, from one statement: `flagged`, every job that may
    be failing or late or whose scheduler row drifted, in full and in name order (the
    lists of the summary); `groups`, all other jobs, only counted."""

    instances: Sequence[Mapping[str, Any]]
    last_reconcile: Mapping[str, Any] | None
    last_applied: Mapping[str, Any] | None
    groups: Sequence[JobGroup]
    flagged: Sequence[JobRow]
    foreign_rows: Sequence[str]
    quarantined: Sequence[Mapping[str, Any]]
    # The newest pass that applied, found nothing, or (RECONCILER_SYNC=manual) planned.
    last_settled: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class StatusView:
    leader_state: LeaderState
    leader: Mapping[str, Any] | None
    instances: list[dict[str, Any]]
    applied_revision: str | None
    applied_revision_dirty: bool
    last_reconcile: Mapping[str, Any] | None
    jobs_by_status: dict[str, int]
    jobs_by_state: dict[str, int]
    drift: dict[str, int]
    drifted_jobs: list[tuple[str, Drift]]
    quarantined: list[Mapping[str, Any]]
    failing: list[JobView]
    late: list[JobView]
    pending_changes: dict[str, int] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The summary as JSON-ready data (the CLI's `-o json` and the API's body)."""
        return {
            "leader": _leader_document(self.leader_state, self.leader),
            "instances": self.instances,
            "applied_revision": self.applied_revision,
            "applied_revision_dirty": self.applied_revision_dirty,
            "last_reconcile": self.last_reconcile,
            "jobs_by_status": self.jobs_by_status,
            "jobs_by_state": self.jobs_by_state,
            "drift": self.drift,
            "drifted_jobs": [{"job": name, "drift": kind} for name, kind in self.drifted_jobs],
            "quarantined_files": self.quarantined,
            "failing_jobs": [_brief(view) for view in self.failing],
            "late_jobs": [_brief(view) for view in self.late],
            "pending_changes": self.pending_changes,
        }


def pick_leader(
    instances: Sequence[Mapping[str, Any]],
) -> tuple[LeaderState, Mapping[str, Any] | None]:
    """The `leader` row with the highest epoch, alive or stale; (NONE, None) without one.
    `instances` as `build_status` shapes them (with `fresh`)."""
    leaders = [item for item in instances if item["role"] == Role.LEADER]
    leader = max(leaders, key=lambda item: item["epoch"], default=None)
    if leader is None:
        return LeaderState.NONE, None
    return (LeaderState.ALIVE if leader["fresh"] else LeaderState.STALE), leader


def shape_instances(rows: Sequence[Mapping[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    return [_instance(row, now) for row in rows]


def build_status(rows: StatusRows, *, now: datetime) -> StatusView:
    instances = shape_instances(rows.instances, now=now)
    leader_state, leader = pick_leader(instances)
    views = [view_job(row, now=now) for row in rows.flagged]
    drifted = [(view.row.name, view.drift) for view in views if view.drift is not None]
    drifted += [(name, Drift.FOREIGN_SCHEDULER_ROW) for name in rows.foreign_rows]
    drift_counts = Counter(kind for _, kind in drifted)
    by_status = Counter(view.row.status for view in views)
    by_state = Counter(view.state.value for view in views)
    for group in rows.groups:
        by_status[group.status] += group.jobs
        state = state_of(
            status=group.status,
            quarantined=group.quarantined,
            failed=group.failed,
            overdue=group.overdue,
        )
        by_state[state.value] += group.jobs
    applied = rows.last_applied or {}
    return StatusView(
        leader_state=leader_state,
        leader=leader,
        instances=instances,
        applied_revision=applied.get("revision"),
        applied_revision_dirty=bool(applied.get("revision_dirty")),
        last_reconcile=rows.last_reconcile,
        jobs_by_status=dict(sorted(by_status.items())),
        jobs_by_state={state.value: 0 for state in JobState} | dict(by_state),
        drift={kind.value: drift_counts.get(kind, 0) for kind in Drift},
        drifted_jobs=sorted(drifted),
        quarantined=list(rows.quarantined),
        failing=[view for view in views if view.state is JobState.FAILING],
        late=[view for view in views if view.state is JobState.LATE],
        pending_changes=pending_changes(rows.last_settled),
    )


def pending_changes(last_settled: Mapping[str, Any] | None) -> dict[str, int]:
    """What a manual-sync daemon found and left for `reconcile apply`, by action: the
    counts of the newest settled pass when it only planned; {} when it applied or found
    nothing to change (nothing pending)."""
    if not last_settled or last_settled.get("outcome") != ReconcileOutcome.PLANNED:
        return {}
    counts = {
        action.value: int(last_settled.get(column) or 0) for action, column in COUNT_COLUMNS.items()
    }
    return {action: count for action, count in counts.items() if count}


def _instance(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    heartbeat = as_utc(row["heartbeat_at"])
    assert heartbeat is not None
    return {
        "instance": row["instance"],
        "role": row["role"],
        "epoch": int(row["epoch"]),
        "started_at": as_utc(row["started_at"]),
        "heartbeat_at": heartbeat,
        "fresh": now - heartbeat <= LEADER_STALE_AFTER,
    }


def _leader_document(state: LeaderState, leader: Mapping[str, Any] | None) -> dict[str, Any]:
    found = dict(leader or {})
    return {
        "state": state,
        "instance": found.get("instance"),
        "epoch": found.get("epoch"),
        "heartbeat_at": found.get("heartbeat_at"),
    }


def _brief(view: JobView) -> dict[str, Any]:
    return {
        "job": view.row.name,
        "state": view.state,
        "next_fire": view.next_fire,
        "last_run": view.row.last_run_id,
        "last_run_status": view.row.last_run_status,
        "last_run_slot": as_utc(view.row.last_run_slot),
    }
