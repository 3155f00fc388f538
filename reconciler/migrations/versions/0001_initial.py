"""Initial schema: inventory, run ledger, reconcile history, quarantine, instances and
APScheduler's own job table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("name", sa.String(191), primary_key=True),
        sa.Column("spec", Json, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("labels", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("source_line", sa.Integer, nullable=False),
        sa.Column("revision", sa.String(64)),
        sa.Column("revision_dirty", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("ix_scheduled_jobs_status", "scheduled_jobs", ["status"])
    op.create_index("ix_scheduled_jobs_queue", "scheduled_jobs", ["queue"])

    op.create_table(
        "job_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_name", sa.String(191), nullable=False),
        sa.Column("scheduled_time", Moment, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
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
        sa.Column("result_summary", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", Moment, nullable=False),
        sa.UniqueConstraint("job_name", "scheduled_time", name="uq_job_runs_job_slot"),
    )
    op.create_index("ix_job_runs_job_time", "job_runs", ["job_name", "scheduled_time"])
    op.create_index("ix_job_runs_status", "job_runs", ["status"])

    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("instance", sa.String(255)),
        sa.Column("started_at", Moment, nullable=False),
        sa.Column("finished_at", Moment),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("revision", sa.String(64)),
        sa.Column("revision_dirty", sa.Boolean),
        sa.Column("plan_hash", sa.String(64)),
        sa.Column("added", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
        sa.Column("resumed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("removed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("repaired", sa.Integer, nullable=False, server_default="0"),
        sa.Column("quarantined_files", sa.Integer, nullable=False, server_default="0"),
        sa.Column("foreign_rows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("errors", Json),
    )
    op.create_index("ix_reconcile_runs_started", "reconcile_runs", ["started_at"])

    op.create_table(
        "quarantined_files",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("diagnostics", Json, nullable=False),
        sa.Column("since", Moment, nullable=False),
        sa.Column("last_seen", Moment, nullable=False),
    )

    op.create_table(
        "reconciler_instances",
        sa.Column("instance", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("started_at", Moment, nullable=False),
        sa.Column("heartbeat_at", Moment, nullable=False),
    )

    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    for table in (
        "apscheduler_jobs",
        "reconciler_instances",
        "quarantined_files",
        "reconcile_runs",
        "job_runs",
        "scheduled_jobs",
    ):
        op.drop_table(table)
