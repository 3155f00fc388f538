"""Every closed vocabulary of the reconciler, defined once (APScheduler 4's `_enums.py`,
Terraform's `plans.Action`).

Each is a `StrEnum`: a member IS its string, so the words written to the database, to
JSON, to YAML (through `jsonable`), to Prometheus labels and to the terminal are the
values below, byte for byte. Tables, metrics, renderers and the read model import these
names instead of spelling the words; a new word is added here or nowhere.

    Action            what a plan does to one job, with its plan symbol
    JobStatus         the inventory's `scheduled_jobs.status`
    JobState          the one word a reader sees per job (derived, never stored)
    Drift             how a job's scheduler row disagrees with the inventory
    LeaderState       whether a leader heartbeats
    Role              `reconciler_instances.role`
    RunStatus         the run ledger's `job_runs.status`
    Fate              what became of one slot (`reconcile explain`)
    RunReason         the ledger's `reason` when code (not only people) reads it
    MissReason        label of reconciler_missed_slots_total
    FireOutcome       label of reconciler_fires_total
    TaskOutcome       label of the worker's task and job run counters
    Trigger           what woke a reconcile pass (`reconcile_runs.trigger`)
    ReconcileOutcome  how a pass ended (`reconcile_runs.outcome`)
    PassResult   the same, coarser: the label of reconciler_reconcile_runs_total
    ErrorKind         label of reconciler_reconcile_errors_total
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a plan does to one job. Apply knows every one; the reason beside it is for
    people and never drives apply."""

    ADD = "add"
    UPDATE = "update"
    PAUSE = "pause"
    RESUME = "resume"
    RENAME = "rename"
    REMOVE = "remove"
    REPAIR = "repair"

    @property
    def symbol(self) -> str:
        """The plan's mark: + create, ~ change in place, - destroy, ! repair drift."""
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.ADD: "+",
    Action.UPDATE: "~",
    Action.PAUSE: "~",
    Action.RESUME: "~",
    Action.RENAME: "~",
    Action.REMOVE: "-",
    Action.REPAIR: "!",
}


# The `reconcile_runs` column that counts each action of a pass.
COUNT_COLUMNS = {
    Action.ADD: "added",
    Action.UPDATE: "updated",
    Action.RENAME: "renamed",
    Action.PAUSE: "paused",
    Action.RESUME: "resumed",
    Action.REMOVE: "removed",
    Action.REPAIR: "repaired",
}


class JobStatus(StrEnum):
    """A managed job's status in the inventory (`scheduled_jobs.status`)."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"  # no future fire: a past one-off, a passed end


class JobState(StrEnum):
    """One word per job for readers, most urgent first when several hold."""

    QUARANTINED = "quarantined"  # its file fails to validate: it runs its last applied spec
    FAILING = "failing"  # its last run failed or expired
    LATE = "late"  # active, and its next fire is over LATE_AFTER in the past
    PAUSED = "paused"
    COMPLETED = "completed"  # no future fire (a past one-off, an end date)
    ACTIVE = "active"


class Drift(StrEnum):
    """How a job's scheduler row (`apscheduler_jobs`) disagrees with the inventory."""

    MISSING_SCHEDULER_ROW = "missing_scheduler_row"
    SCHEDULER_PAUSED = "scheduler_paused"
    SCHEDULER_ACTIVE = "scheduler_active"
    UNEXPECTED_SCHEDULER_ROW = "unexpected_scheduler_row"
    FOREIGN_SCHEDULER_ROW = "foreign_scheduler_row"


class LeaderState(StrEnum):
    ALIVE = "alive"  # a leader heartbeats
    STALE = "stale"  # the newest leader row stopped heartbeating (dead, hung, cut off)
    NONE = "none"  # no process ever led, or the last one stepped down


class Role(StrEnum):
    """A reconciler process's role in `reconciler_instances.role`."""

    LEADER = "leader"  # fires and applies; its row carries the fencing token
    STANDBY = "standby"  # waits for the leader's lease to pass
    STOPPED = "stopped"  # shut down cleanly


class RunStatus(StrEnum):
    """A run's status in the ledger (`job_runs.status`)."""

    SCHEDULED = "scheduled"  # ledger row written, not yet published
    PUBLISHED = "published"  # the broker confirmed the message
    STARTED = "started"  # a worker began executing it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"  # failed, a retry is queued
    SKIPPED = "skipped"  # not run on purpose: duplicate, overlap ... (see `reason`)
    MISSED = "missed"  # its slot passed unfired: downtime past the grace, coalesced ... (`reason`)
    EXPIRED = "expired"  # could not be published (or taken) before it expired


# A run that is still on its way: it holds its slot (overlap counts it as running).
UNFINISHED_RUN_STATUSES = (
    RunStatus.SCHEDULED,
    RunStatus.PUBLISHED,
    RunStatus.STARTED,
    RunStatus.RETRIED,
)
# What a worker's execution ends with; a late or second report never overwrites them.
FINAL_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED)
# A job whose last run ended so is `failing`.
FAILED_RUN_STATUSES = (RunStatus.FAILED, RunStatus.EXPIRED)


class Fate(StrEnum):
    """What became of one slot of a job, as `reconcile explain` tells it."""

    RAN = "ran"  # a run happened (or is happening): its id and outcome
    MISSED = "missed"  # recorded missed: later than its misfire grace, or expired
    COALESCED = "coalesced"  # folded into a later slot's run (coalesce: true)
    SKIPPED = "skipped"  # not run on purpose: overlap, paused, before it existed, start/end
    ABSENT = "absent"  # a past slot nothing fired or recorded (no leader was running?)
    NOT_DUE = "not_yet_due"  # in the future, or due this very moment


class RunReason(StrEnum):
    """The ledger's `reason` where code reads it back (the rest is free text for people)."""

    MISFIRE = "misfire"  # missed: later than its misfire grace (the daemon was down)
    COALESCED = "coalesced"  # missed: folded into a later slot's run (coalesce: true)
    CATCH_UP_LIMIT = "catch_up_limit"  # missed: beyond the catch-up limit after downtime
    OVERLAP = "overlap"  # skipped: max_concurrent_runs still running
    # failed, provisionally: the leader's reaper closed a `started` run whose worker
    # stopped renewing its claim's lease. The holder's own report replaces it, and a
    # redelivery may take the run over (worker/claims.py).
    LOST = "lost: its worker stopped renewing the claim's lease"
    UNMANAGED = "job no longer managed"  # expired: its job was removed before it went out
    NOT_PUBLISHED = "not published before it expired"  # expired in the outbox
    NOT_TAKEN = "expired before a worker took it"  # expired on the queue


class MissReason(StrEnum):
    """Why a slot did not run, as reconciler_missed_slots_total counts it: the ledger's
    reason of a missed or skipped run, or `expired` for a run that expired."""

    MISFIRE = RunReason.MISFIRE.value
    COALESCED = RunReason.COALESCED.value
    CATCH_UP_LIMIT = RunReason.CATCH_UP_LIMIT.value
    OVERLAP = RunReason.OVERLAP.value
    EXPIRED = RunStatus.EXPIRED.value


class FireOutcome(StrEnum):
    """What became of one fire of the leader's scheduler (reconciler_fires_total)."""

    PUBLISHED = "published"
    DUPLICATE = "duplicate"  # its slot was already in the ledger
    SKIPPED_OVERLAP = "skipped_overlap"
    MISSED = "missed"
    UNPUBLISHED = "unpublished"  # the broker did not confirm it: the retrier resends it
    EXPIRED = "expired"
    # Offered to a process that had just lost the leadership, not fired; or accepted just
    # before losing it and found in the ledger when recorded: the next leader's slot; or
    # fired by the next leader, due when it took over, and found recorded late by that
    # process (the failover's hand-over, either order: dispatch.batch.record_batch).
    FENCED = "fenced"


class TaskOutcome(StrEnum):
    """How one task execution ended, as the worker counts it."""

    SUCCEEDED = RunStatus.SUCCEEDED.value
    FAILED = RunStatus.FAILED.value
    RETRIED = RunStatus.RETRIED.value
    DUPLICATE = "duplicate"  # refused by the idempotency guard or the ledger: not run


class Trigger(StrEnum):
    """What woke a reconcile pass (`reconcile_runs.trigger`)."""

    WATCH = "watch"  # a job file changed
    RESYNC = "resync"  # the periodic full pass
    STARTUP = "startup"  # the daemon's first pass
    CLI = "cli"  # `reconcile plan` / `reconcile apply`


class ReconcileOutcome(StrEnum):
    """How a reconcile pass ended (`reconcile_runs.outcome`)."""

    APPLIED = "applied"
    NO_CHANGES = "no_changes"
    PLANNED = "planned"  # planned, not applied: a RECONCILER_SYNC=manual daemon's pass
    REFUSED = "refused"  # a safety guard said no (mass delete, empty desired set)
    STALE = "stale"  # `apply --plan-hash`: the state moved since the approved preview
    INVALID = "invalid"  # a one-shot apply found a quarantined file and applied nothing
    ERROR = "error"  # the pass raised

    @property
    def result(self) -> PassResult:
        return _RESULTS.get(self, PassResult.FAILED)


class PassResult(StrEnum):
    """A pass's outcome as reconciler_reconcile_runs_total counts it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


# The passes that settled the applied revision (the read model's "applied revision").
APPLIED_OUTCOMES = (ReconcileOutcome.APPLIED, ReconcileOutcome.NO_CHANGES)
# ... and those that settled what is pending (a manual-sync daemon's planned pass too).
SETTLED_OUTCOMES = (*APPLIED_OUTCOMES, ReconcileOutcome.PLANNED)
_RESULTS = dict.fromkeys(SETTLED_OUTCOMES, PassResult.SUCCEEDED) | {
    ReconcileOutcome.REFUSED: PassResult.REFUSED
}


class ErrorKind(StrEnum):
    """Why a reconcile pass failed (reconciler_reconcile_errors_total)."""

    TRANSIENT = "transient"  # a service did not answer: the next pass retries
    REFUSED = "refused"  # a safety guard said no
    BUG = "bug"  # anything else
