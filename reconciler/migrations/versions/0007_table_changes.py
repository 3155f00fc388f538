"""Change counts: triggers count the transactions that write `scheduled_jobs` and
`apscheduler_jobs` (reconciler.store.change_counts), so that a daemon pass finds out
that neither changed without scanning them.

PostgreSQL: one statement-level trigger per table (INSERT, UPDATE, DELETE, TRUNCATE),
enabled ALWAYS (it fires under session_replication_role = replica too: a restore or a
logical replica's writes are counted). It adds one row per writing transaction, keyed by
the transaction's id: a second statement of the same transaction conflicts with its own
row and does nothing, and no two writers ever touch the same row (a single counter row
would make every writer of a table wait for the one before to commit).
SQLite: row-level triggers (it has no others) add 1 to the table's one row; SQLite
serialises writers anyway.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("scheduled_jobs", "apscheduler_jobs")
_FUNCTION = """
CREATE FUNCTION reconciler_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO table_changes (table_name, txid, changes)
    VALUES (TG_TABLE_NAME, txid_current(), 1)
    ON CONFLICT (table_name, txid) DO NOTHING;
    RETURN NULL;
END
$$
"""
_SQLITE_EVENTS = ("insert", "update", "delete")


def upgrade() -> None:
    op.create_table(
        "table_changes",
        sa.Column("table_name", sa.String(64), primary_key=True),
        sa.Column("txid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("changes", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER count_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION reconciler_count_change()"
            )
            op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER count_changes")
        return
    for table in _TABLES:
        op.execute(f"INSERT INTO table_changes VALUES ('{table}', 0, 0)")
        for event in _SQLITE_EVENTS:
            op.execute(
                f"CREATE TRIGGER count_changes_{table}_{event} AFTER {event.upper()} ON {table} "
                f"BEGIN UPDATE table_changes SET changes = changes + 1 "
                f"WHERE table_name = '{table}'; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER count_changes ON {table}")
        op.execute("DROP FUNCTION reconciler_count_change()")
    else:
        for table in _TABLES:
            for event in _SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER count_changes_{table}_{event}")
    op.drop_table("table_changes")
