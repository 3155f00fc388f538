"""Run claims and the leader lease: job_runs.attempt/lease_until/takeovers,
reconciler_instances.lease_until/backend_pid (issue 17: exactly once under faults).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("attempt", sa.String(128)))
        batch.add_column(sa.Column("lease_until", Moment))
        batch.add_column(sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("reconciler_instances") as batch:
        batch.add_column(sa.Column("lease_until", Moment))
        batch.add_column(sa.Column("backend_pid", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("reconciler_instances") as batch:
        batch.drop_column("backend_pid")
        batch.drop_column("lease_until")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("takeovers")
        batch.drop_column("lease_until")
        batch.drop_column("attempt")
