"""Every Prometheus metric of every process, defined in one place.

Names are prefixed `reconciler_`. Label cardinality is bounded: job names and task names
are labels (a few thousand at most); fire ids, task ids and run ids never are.
Dashboards and alert rules in `docker/` use only these names; a test scrapes the real
processes and checks that every name they use is exported.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- reconciler daemon / CLI: the reconcile loop ---------------------------------------
RECONCILE_RUNS = Counter(
    "reconciler_reconcile_runs_total",
    "Reconcile passes by trigger and outcome",
    ["trigger", "outcome"],
)
RECONCILE_DURATION = Histogram(
    "reconciler_reconcile_duration_seconds",
    "Wall time of one reconcile pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_CHANGES = Counter(
    "reconciler_reconcile_changes_total",
    "Changes applied, by action (add, update, pause, resume, remove, repair)",
    ["action"],
)
RECONCILE_ERRORS = Counter(
    "reconciler_reconcile_errors_total",
    "Reconcile passes that failed, by error kind (transient, refused, bug)",
    ["kind"],
)
QUARANTINED_FILES = Gauge(
    "reconciler_quarantined_files", "Job files that failed to parse or validate"
)
DRIFT_REPAIRS = Counter(
    "reconciler_drift_repairs_total", "apscheduler_jobs rows of ours repaired"
)
FOREIGN_ROWS = Gauge(
    "reconciler_foreign_scheduler_rows", "apscheduler_jobs rows we do not own (left alone)"
)
MANAGED_JOBS = Gauge(
    "reconciler_managed_jobs", "Jobs in the inventory, by status", ["status"]
)
LEADER = Gauge("reconciler_leader", "1 while this process is the leader, else 0")
LAST_RECONCILE_SUCCESS = Gauge(
    "reconciler_last_reconcile_success_timestamp_seconds",
    "Unix time of the last reconcile pass that did not fail",
)

# --- firing ------------------------------------------------------------------------
FIRES = Counter(
    "reconciler_fires_total",
    "Fires by outcome (published, duplicate, skipped_overlap, missed, unpublished, expired)",
    ["job", "outcome"],
)
FIRE_LATENESS = Histogram(
    "reconciler_fire_lateness_seconds",
    "Time from a slot's scheduled time to its publish",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UNPUBLISHED_FIRES = Gauge(
    "reconciler_unpublished_fires", "Fires in the ledger not yet confirmed by the broker"
)
PUBLISH_FAILURES = Counter(
    "reconciler_publish_failures_total", "Publish attempts that failed or timed out"
)
DUPLICATE_FIRES = Counter(
    "reconciler_duplicate_fires_suppressed_total",
    "Second fires of a slot (failover, two schedulers) recorded and not published",
    ["job"],
)
MISSED_SLOTS = Counter(
    "reconciler_missed_slots_total",
    "Slots that were not run, by reason (misfire, coalesced, overlap, expired)",
    ["job", "reason"],
)
NEXT_FIRE = Gauge(
    "reconciler_job_next_fire_timestamp_seconds", "Next scheduled fire per job", ["job"]
)

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
    ["job"],
    multiprocess_mode="max",
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
