"""What a pass that applies holds and announces, on PostgreSQL.

- The apply lock: one applier at a time across processes (daemons, a CLI apply), a
  transaction-level advisory lock released at commit or rollback. SQLite serialises
  writers itself (one writer per file, with busy_timeout): nothing to take.
- The change notification: `NOTIFY reconciler_changed, '<plan hash>'` in the applying
  transaction, delivered to listeners when it commits.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Any constant shared by every process of a deployment: the key of the apply lock.
APPLY_LOCK_KEY = 0x7265636F6E63  # "reconc"
NOTIFY_CHANNEL = "reconciler_changed"


def hold_apply_lock(connection: Connection) -> None:
    """Wait for the apply lock, held until the connection's transaction ends. The first
    statement of that transaction: it is made READ COMMITTED, so that what it reads once
    the lock is held includes the apply it waited for (under a database's default of
    REPEATABLE READ the snapshot would be the lock statement's, taken before it waited)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(APPLY_LOCK_KEY)))


def notify_applied(connection: Connection, plan_hash: str) -> None:
    """Announce, at commit, that a plan was applied."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, plan_hash)))
