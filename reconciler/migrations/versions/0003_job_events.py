"""Job events: one row per applied change to a job other than its first add (update,
pause, resume, remove, repair), so `reconcile explain` can say a slot was skipped because
the job was paused then, and `describe job` can list what happened to it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_name", sa.String(191), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("revision", sa.String(64)),
    )
    op.create_index("ix_job_events_job_at", "job_events", ["job_name", "at"])


def downgrade() -> None:
    op.drop_index("ix_job_events_job_at", table_name="job_events")
    op.drop_table("job_events")
