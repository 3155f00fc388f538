"""`reconcile_runs.renamed`: a pass's renames counted apart from its updates (DESIGN:
counts per action; renames were counted with the updates). Rows of earlier passes keep
their renames in `updated`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconcile_runs",
        sa.Column("renamed", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("reconcile_runs") as batch:
        batch.drop_column("renamed")
