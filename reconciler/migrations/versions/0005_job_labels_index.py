"""The label filters of `GET /api/v1/jobs` and `reconcile get jobs -l` by containment
(`labels @> {key: value}`): a GIN index on `scheduled_jobs.labels`, PostgreSQL only.
Without it a label that few or no jobs have read all 100,000 rows (0.2-0.3 s a page).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_scheduled_jobs_labels",
            "scheduled_jobs",
            ["labels"],
            postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_scheduled_jobs_labels", table_name="scheduled_jobs")
