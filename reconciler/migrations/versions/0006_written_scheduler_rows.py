"""Written scheduler rows: the digest of each `apscheduler_jobs` state as we wrote it, so
a one-shot `reconcile plan` / `apply` decodes only the rows that changed since
(reconciler.store.scheduler_rows.read_scheduler_rows_once).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "written_scheduler_rows",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("state_sha256", sa.String(64), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("revision", sa.String(64)),
        sa.Column("code", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("written_scheduler_rows")
