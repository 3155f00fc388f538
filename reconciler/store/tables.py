"""Every table this package reads or writes. Changed only together with a migration.

`apscheduler_jobs` is APScheduler 3's `SQLAlchemyJobStore` table, declared here exactly
as the store declares it so that Alembic creates it and the store finds it existing.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Moment = sa.DateTime(timezone=True)

# The words stored in the status-like columns are the enums of reconciler.core.vocabulary
# (JobStatus, RunStatus, RunReason, Trigger, ReconcileOutcome, Action, Role); no CHECK
# constraint holds them, so a new word needs no migration, only room in its column
# (tests/unit/core/test_vocabulary.py checks that every word fits).

scheduled_jobs = sa.Table(
    "scheduled_jobs",
    metadata,
    sa.Column("name", sa.String(191), primary_key=True),
    sa.Column("spec", Json, nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("labels", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # JobStatus
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("source_line", sa.Integer, nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("revision_dirty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_scheduled_jobs_status", "status"),
    sa.Index("ix_scheduled_jobs_queue", "queue"),
    # The label filters (`labels @> {key: value}`, store.status.has_label); PostgreSQL
    # only: SQLite's JSON is text, which a plain index would not help to search.
    sa.Index(
        "ix_scheduled_jobs_labels",
        "labels",
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # the fire id == Celery task id
    sa.Column("job_name", sa.String(191), nullable=False),
    sa.Column("scheduled_time", Moment, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # RunStatus
    sa.Column("reason", sa.Text),  # RunReason, or free text for people
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(512), nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("fired_at", Moment),
    sa.Column("published_at", Moment),
    sa.Column("started_at", Moment),
    sa.Column("finished_at", Moment),
    sa.Column("lateness_seconds", sa.Float),
    sa.Column("publish_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", Moment),
    sa.Column("expires_at", Moment),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("worker", sa.String(255)),
    # The claim (worker/claims.py): the token of the execution that holds the run and
    # until when; a `started` row whose lease passed may be taken over (counted).
    sa.Column("attempt", sa.String(128)),
    sa.Column("lease_until", Moment),
    sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"),
    sa.Column("result_summary", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", Moment, nullable=False),
    sa.UniqueConstraint("job_name", "scheduled_time", name="uq_job_runs_job_slot"),
    sa.Index("ix_job_runs_job_time", "job_name", "scheduled_time"),
    sa.Index("ix_job_runs_status", "status"),
)

reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trigger", sa.String(16), nullable=False),  # Trigger
    sa.Column("instance", sa.String(255)),
    sa.Column("started_at", Moment, nullable=False),
    sa.Column("finished_at", Moment),
    sa.Column("duration_seconds", sa.Float),
    sa.Column("outcome", sa.String(16), nullable=False),  # ReconcileOutcome
    sa.Column("revision", sa.String(64)),
    sa.Column("revision_dirty", sa.Boolean),
    sa.Column("plan_hash", sa.String(64)),
    sa.Column("added", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("renamed", sa.Integer, nullable=False, server_default="0"),  # since 0008
    sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
    sa.Column("resumed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("repaired", sa.Integer, nullable=False, server_default="0"),
    sa.Column("quarantined_files", sa.Integer, nullable=False, server_default="0"),
    sa.Column("foreign_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", Json),
    sa.Index("ix_reconcile_runs_started", "started_at"),
)

# Applied changes to a job other than its first add (see migration 0003): `status` is
# the job's inventory status after the change (None once removed).
job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_name", sa.String(191), nullable=False),
    sa.Column("at", Moment, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # Action
    sa.Column("status", sa.String(16)),  # JobStatus
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Index("ix_job_events_job_at", "job_name", "at"),
)

# Files whose last parse failed: their jobs keep their last applied spec.
quarantined_files = sa.Table(
    "quarantined_files",
    metadata,
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("diagnostics", Json, nullable=False),
    sa.Column("since", Moment, nullable=False),
    sa.Column("last_seen", Moment, nullable=False),
)

# What loading each job file gave, by its content digest (reconciler.spec.records): a
# one-shot plan or apply parses only the files whose digest or validation context
# differs. A cache of a pure function: any row may be missing or stale, never wrong.
job_files = sa.Table(
    "job_files",
    metadata,
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("context", sa.String(64), nullable=False),
    sa.Column("outcome", Json, nullable=False),
    sa.Column("recorded_at", Moment, nullable=False),
)

# Scheduler rows as we wrote them (store/scheduler_rows.py): the SHA-256 of the exact
# `job_state` bytes, and what they were made for (the job's spec hash and revision, under
# the code `code` digests). A one-shot plan compares the digest the database computes of
# the stored bytes with this one instead of fetching and unpickling the row: equal, the row
# holds exactly what we wrote; anything else (a fire's write-back, an external edit, a
# foreign writer) is decoded and checked in full. Any row may be missing, never wrong.
written_scheduler_rows = sa.Table(
    "written_scheduler_rows",
    metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("state_sha256", sa.String(64), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("revision", sa.String(64)),
    sa.Column("code", sa.String(64), nullable=False),
)

# One row per reconciler process; the leader row carries the fencing token (epoch).
reconciler_instances = sa.Table(
    "reconciler_instances",
    metadata,
    sa.Column("instance", sa.String(255), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),  # Role
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("started_at", Moment, nullable=False),
    sa.Column("heartbeat_at", Moment, nullable=False),
    # The leader's lease (engine/leader.py): renewed every interval on the database's
    # clock; a standby that finds it passed terminates `backend_pid` and takes over.
    sa.Column("lease_until", Moment),
    sa.Column("backend_pid", sa.Integer),
)

apscheduler_jobs = sa.Table(
    "apscheduler_jobs",
    metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)

# How many transactions have written `scheduled_jobs` and `apscheduler_jobs`, kept by
# triggers (store/change_counts.py): a pass whose counts have not moved since the last
# one reads neither table. On PostgreSQL each writing transaction adds one row (txid: its
# id), so writers never wait for one another; `compact_change_counts` folds old rows
# into one (the sum stays). On SQLite (one writer at a time) one row per table, txid 0.
table_changes = sa.Table(
    "table_changes",
    metadata,
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("txid", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("changes", sa.BigInteger, nullable=False),
)
