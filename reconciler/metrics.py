"""Every Prometheus metric of every process, defined in one place.

Names are prefixed `reconciler_`. Label cardinality is bounded: job names and task names
are labels (a few thousand at most); fire ids, task ids and run ids never are.
Dashboards and alert rules in `docker/` use only these names; a test scrapes the real
processes and checks that every name they use is exported.

Labels:
- the job's name is the label `job_name`, never `job`: Prometheus gives every scraped
  series a `job` label of its own (the scrape job) and would rename ours `exported_job`
  (the convention of kube-state-metrics, whose CronJob metrics say `job_name` too);
- closed vocabularies (triggers, outcomes, actions, statuses, reasons) are the enums of
  `reconciler.core.vocabulary`, as the tuples below. Their series are created at
  import with the value 0, so every process exports them before the first event and
  `rate()` / `increase()` count the first event too. Per-job and per-task series are
  created by `track_job` / `track_task` for the same reason, and `forget_job` drops a
  removed job's series so no alert fires for it.

Each process exports only its own families (DAEMON_METRICS, WORKER_METRICS,
API_METRICS; `only(...)` builds the registry it serves), so the API's `/metrics` never
shows a `reconciler_leader 0` beside a live leader. Several daemons (leader and
standbys) and workers export the same families: dashboards and alerts aggregate with
`sum` (counters) or `max` (gauges).

Every metric here moves during a real run; tests/observability/test_metrics_move.py
scrapes the real processes with Prometheus and fails on one that does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics_core import Metric

from reconciler.core.vocabulary import (
    Action,
    ErrorKind,
    FireOutcome,
    JobStatus,
    MissReason,
    PassResult,
    TaskOutcome,
    Trigger,
)
from reconciler.job_series import JobSeries

# The label values of the closed vocabularies: the enums of reconciler.core.vocabulary.
RECONCILE_TRIGGERS = tuple(Trigger)
RECONCILE_OUTCOMES = tuple(PassResult)
CHANGE_ACTIONS = tuple(Action)
ERROR_KINDS = tuple(ErrorKind)
JOB_STATUSES = tuple(JobStatus)
FIRE_OUTCOMES = tuple(FireOutcome)
MISS_REASONS = tuple(MissReason)
TASK_STATUSES = tuple(TaskOutcome)

# --- reconciler daemon / CLI: the reconcile loop ---------------------------------------
RECONCILE_RUNS = Counter(
    "reconciler_reconcile_runs_total",
    "Reconcile passes by trigger (watch, resync, cli) and outcome (succeeded, failed, refused)",
    ["trigger", "outcome"],
)
RECONCILE_DURATION = Histogram(
    "reconciler_reconcile_duration_seconds",
    "Wall time of one reconcile pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_CHANGES = Counter(
    "reconciler_reconcile_changes_total",
    "Changes applied, by action (add, update, pause, resume, rename, remove, repair)",
    ["action"],
)
PENDING_CHANGES = Gauge(
    "reconciler_pending_changes",
    "Changes the last pass found and did not apply (RECONCILER_SYNC=manual), by action",
    ["action"],
    multiprocess_mode="livemax",
)
RECONCILE_ERRORS = Counter(
    "reconciler_reconcile_errors_total",
    "Reconcile passes that failed, by error kind (transient, refused, bug)",
    ["kind"],
)
# Gauges of the daemon are `livemax` in a multiprocess worker (which exports them at 0):
# one series without a `pid` label, gone with the process.
QUARANTINED_FILES = Gauge(
    "reconciler_quarantined_files",
    "Job files that failed to parse or validate",
    multiprocess_mode="livemax",
)
DRIFT_REPAIRS = Counter("reconciler_drift_repairs_total", "apscheduler_jobs rows of ours repaired")
FOREIGN_ROWS = Gauge(
    "reconciler_foreign_scheduler_rows",
    "apscheduler_jobs rows we do not own (left alone)",
    multiprocess_mode="livemax",
)
MANAGED_JOBS = Gauge(
    "reconciler_managed_jobs",
    "Jobs in the inventory, by status",
    ["status"],
    multiprocess_mode="livemax",
)
LEADER = Gauge(
    "reconciler_leader",
    "1 while this process is the leader, else 0",
    multiprocess_mode="livemax",
)
SCHEDULER_RUNNING = Gauge(
    "reconciler_scheduler_running",
    "1 while this leader's APScheduler thread runs; 0 on a standby, during a new term's "
    "startup pass, or once it cannot fire (its thread died, or a write-back failed for 30 s: "
    "the daemon then gives up the lead and exits 1)",
    multiprocess_mode="livemax",
)
STARTUP_PASS = Gauge(
    "reconciler_startup_pass_started_timestamp_seconds",
    "Unix time this leader's startup pass began, while it runs (its scheduler starts after "
    "it: the healthcheck gives it its own time limit); 0 otherwise",
    multiprocess_mode="max",
)
DAEMON_LOOP = Gauge(
    "reconciler_daemon_loop_timestamp_seconds",
    "Unix time of the leader loop's latest turn (liveness: it turns every poll interval)",
    multiprocess_mode="max",
)
LAST_RECONCILE_SUCCESS = Gauge(
    "reconciler_last_reconcile_success_timestamp_seconds",
    "Unix time of the last reconcile pass that did not fail",
    multiprocess_mode="max",
)

# --- firing (the leader's scheduler) -------------------------------------------------
# The per-job families live in one collector over a list per job (reconciler.job_series:
# 17 prometheus_client children per job cost 1.17 GB at 100,000 jobs). Daemon only.
JOB_SERIES = JobSeries()
FIRES = JOB_SERIES.counter(
    "reconciler_fires_total",
    "Fires by outcome (published, duplicate, skipped_overlap, missed, unpublished, expired, "
    "fenced)",
    ("outcome", FIRE_OUTCOMES),
)
FIRE_LATENESS = Histogram(
    "reconciler_fire_lateness_seconds",
    "Time from a slot's scheduled time to its publish",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UNPUBLISHED_FIRES = Gauge(
    "reconciler_unpublished_fires",
    "Fires in the ledger not yet confirmed by the broker",
    multiprocess_mode="livemax",
)
PUBLISH_FAILURES = Counter(
    "reconciler_publish_failures_total", "Publish attempts that failed or timed out"
)
DUPLICATE_FIRES = JOB_SERIES.counter(
    "reconciler_duplicate_fires_suppressed_total",
    "Second fires of a slot (failover, two schedulers) recorded and not published",
)
MISSED_SLOTS = JOB_SERIES.counter(
    "reconciler_missed_slots_total",
    "Slots that were not run, by reason (misfire, coalesced, catch_up_limit, overlap, expired)",
    ("reason", MISS_REASONS),
)
SLOT_ABSENT = JOB_SERIES.gauge(
    "reconciler_job_slot_absent",
    "1 when a past slot of the job (older than its misfire grace plus 60 s) has no row "
    "in the run ledger and nothing newer has: it neither ran nor was recorded missed or "
    "skipped; 0 otherwise (absent while paused or completed)",
)
NEXT_FIRE = JOB_SERIES.gauge(
    "reconciler_job_next_fire_timestamp_seconds",
    "Next scheduled fire per job (absent while paused)",
)
JOB_INTERVAL = JOB_SERIES.gauge(
    "reconciler_job_interval_seconds",
    "Nominal seconds between two fires of a job: its interval, or the gap between the "
    "next two fires of its cron (absent for a one-off date)",
)
REGISTRY.register(JOB_SERIES)

# --- workers -----------------------------------------------------------------------
TASK_EXECUTIONS = Counter(
    "reconciler_task_executions_total",
    "Task executions by task and final status (succeeded, failed, retried, duplicate)",
    ["task", "status"],
)
TASK_DURATION = Histogram(
    "reconciler_task_duration_seconds",
    "Task run time by task",
    ["task"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)
TASK_RETRIES = Counter("reconciler_task_retries_total", "Task retries by task", ["task"])
JOB_LAST_SUCCESS = Gauge(
    "reconciler_job_last_success_timestamp_seconds",
    "Unix time a job last succeeded",
    ["job_name"],
    multiprocess_mode="max",
)
JOB_RUNS = Counter(
    "reconciler_job_runs_total",
    "Executions of a job's fires by final status (succeeded, failed, retried, duplicate)",
    ["job_name", "status"],
)
# A summary without quantiles: `_sum` and `_count` per job (two series; a histogram per
# job would be a dozen), enough for the mean duration of a job's runs.
JOB_RUN_DURATION = Summary(
    "reconciler_job_run_duration_seconds", "Run time of a job's executions", ["job_name"]
)
LEDGER_WRITE_FAILURES = Counter(
    "reconciler_ledger_write_failures_total",
    "Run-ledger writes by workers that failed (the task itself was not affected)",
    ["operation"],
)
LEDGER_SPOOLED = Gauge(
    "reconciler_ledger_spooled_writes",
    "Run-ledger writes of a worker waiting for the database (retried until it answers)",
    multiprocess_mode="livesum",
)
RUN_TAKEOVERS = Counter(
    "reconciler_run_takeovers_total",
    "Runs whose claim lease had expired, taken over by another delivery (worker lost)",
)
LOST_RUNS = Counter(
    "reconciler_lost_runs_total",
    "Started runs the leader closed as lost: their worker stopped renewing the lease",
)
RESULT_STORE_FAILURES = Counter(
    "reconciler_result_store_failures_total",
    "Task results the Celery result backend could not store (the task ran regardless)",
)
STALE_FIRES = Counter(
    "reconciler_stale_fires_total",
    "Fires refused because this process no longer leads (fencing)",
)
IDEMPOTENT_SKIPS = Counter(
    "reconciler_idempotent_skips_total",
    "Deliveries not executed because the fire already ran or is running",
    ["task"],
)

# --- API ---------------------------------------------------------------------------
API_REQUESTS = Counter(
    "reconciler_api_requests_total", "API requests by route and status", ["route", "status"]
)
API_LATENCY = Histogram(
    "reconciler_api_request_duration_seconds", "API request latency by route", ["route"]
)

# --- which process exports what ------------------------------------------------------
DAEMON_METRICS = (
    RECONCILE_RUNS,
    RECONCILE_DURATION,
    RECONCILE_CHANGES,
    RECONCILE_ERRORS,
    PENDING_CHANGES,
    DAEMON_LOOP,
    STARTUP_PASS,
    SCHEDULER_RUNNING,
    QUARANTINED_FILES,
    DRIFT_REPAIRS,
    FOREIGN_ROWS,
    MANAGED_JOBS,
    LEADER,
    LAST_RECONCILE_SUCCESS,
    FIRES,
    FIRE_LATENESS,
    UNPUBLISHED_FIRES,
    PUBLISH_FAILURES,
    DUPLICATE_FIRES,
    MISSED_SLOTS,
    STALE_FIRES,
    LOST_RUNS,
    SLOT_ABSENT,
    NEXT_FIRE,
    JOB_INTERVAL,
)
WORKER_METRICS = (
    TASK_EXECUTIONS,
    TASK_DURATION,
    TASK_RETRIES,
    JOB_LAST_SUCCESS,
    JOB_RUNS,
    JOB_RUN_DURATION,
    LEDGER_WRITE_FAILURES,
    LEDGER_SPOOLED,
    RUN_TAKEOVERS,
    RESULT_STORE_FAILURES,
    IDEMPOTENT_SKIPS,
)
API_METRICS = (API_REQUESTS, API_LATENCY)


def family_names(metrics: Iterable[Any]) -> frozenset[str]:
    """The family names (as collected: a counter's without `_total`) of `metrics`."""
    return frozenset(family.name for metric in metrics for family in metric.describe())


class _Only:
    """A collector passing on the `reconciler_*` families named, and every family that is
    not ours (the process and platform collectors of prometheus_client)."""

    def __init__(self, source: Any, names: frozenset[str]) -> None:
        self._source = source
        self._names = names

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            if family.name in self._names or not family.name.startswith("reconciler_"):
                yield family


def only(metrics: Iterable[Any], source: Any = REGISTRY) -> CollectorRegistry:
    """A registry serving the families of `metrics` from `source` (default: this
    process's registry; a worker passes its multiprocess registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Only(source, family_names(metrics)))
    return registry


def _init_closed_vocabularies() -> None:
    for trigger in RECONCILE_TRIGGERS:
        for outcome in RECONCILE_OUTCOMES:
            RECONCILE_RUNS.labels(trigger=trigger, outcome=outcome)
    for action in CHANGE_ACTIONS:
        RECONCILE_CHANGES.labels(action=action)
        PENDING_CHANGES.labels(action=action)
    for kind in ERROR_KINDS:
        RECONCILE_ERRORS.labels(kind=kind)
    for status in JOB_STATUSES:
        MANAGED_JOBS.labels(status=status)


_init_closed_vocabularies()


# Made at 0 by track_job (an existing one keeps its value, as `labels()` would).
_CREATED_BY_TRACK_JOB = (
    *FIRES.indexes(),
    *MISSED_SLOTS.indexes(),
    *DUPLICATE_FIRES.indexes(),
    *SLOT_ABSENT.indexes(),
)


def track_job(
    job_name: str, *, interval_seconds: float | None, next_fire: float | None = None
) -> None:
    """Create a managed job's series at 0 (so its first fire counts in `increase()`) and
    set its nominal interval and next fire (Unix seconds; None: paused or no more fires).

    Called by the daemon for every job it manages, after each apply. Idempotent."""
    JOB_SERIES.create(job_name, _CREATED_BY_TRACK_JOB)
    # `remove` of an absent series is a no-op.
    if interval_seconds is None:
        JOB_INTERVAL.remove(job_name)
    else:
        JOB_INTERVAL.labels(job_name=job_name).set(interval_seconds)
    if next_fire is None:
        NEXT_FIRE.remove(job_name)
    else:
        NEXT_FIRE.labels(job_name=job_name).set(next_fire)


def forget_job(job_name: str) -> None:
    """Drop every daemon-side series of a job that was removed (no stale alert for it)."""
    JOB_SERIES.forget(job_name)


def track_task(task: str) -> None:
    """Create a task's worker-side series at 0. Called by a worker for each task it
    serves, at start-up (before the pool forks, so the zeros are exported once)."""
    for status in TASK_STATUSES:
        TASK_EXECUTIONS.labels(task=task, status=status)
    TASK_DURATION.labels(task=task)
    TASK_RETRIES.labels(task=task)
    IDEMPOTENT_SKIPS.labels(task=task)
