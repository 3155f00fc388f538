"""The leader's rows (`reconciler_instances`) and PostgreSQL's leader lock, as statements.

The election itself (when to try, the lease kept in memory, fencing, stepping down) is
`engine.leader`'s; here is only what it reads and writes. Every function takes an open
connection (the PostgreSQL elector's is a dedicated autocommit session: the advisory
lock lives and dies with it).

Rows: one per daemon instance, `role` leader / standby / stopped, `epoch` the fencing
token (max over all rows + 1 for each new leader), `heartbeat_at`; on PostgreSQL the
leader row also carries its lease on the server's clock (`lease_until`) and the session
holding the lock (`backend_pid`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# 'Reconcil' in ASCII: one fixed key for every process of every version.
LEADER_LOCK_KEY = 0x5265636F6E63696C

_CLAIM = sa.text(
    "INSERT INTO reconciler_instances (instance, role, epoch, started_at, heartbeat_at) "
    "VALUES (:instance, 'leader', "
    "(SELECT COALESCE(MAX(epoch), 0) + 1 FROM reconciler_instances), :now, :now) "
    "ON CONFLICT (instance) DO UPDATE SET role = 'leader', epoch = excluded.epoch, "
    "heartbeat_at = excluded.heartbeat_at RETURNING epoch"
)
_DEMOTE_OTHERS = sa.text(
    "UPDATE reconciler_instances SET role = 'standby' "
    "WHERE role = 'leader' AND instance <> :instance"
)
_HEARTBEAT = sa.text(
    "INSERT INTO reconciler_instances (instance, role, epoch, started_at, heartbeat_at) "
    "VALUES (:instance, :role, 0, :now, :now) "
    "ON CONFLICT (instance) DO UPDATE SET role = excluded.role, "
    "heartbeat_at = excluded.heartbeat_at"
)
_MAX_EPOCH = sa.text("SELECT COALESCE(MAX(epoch), 0) FROM reconciler_instances")
# PostgreSQL only: the lease on the server's clock, and the session holding the lock.
_LEASE = sa.text(
    "UPDATE reconciler_instances SET lease_until = now() + make_interval(secs => :lease), "
    "backend_pid = pg_backend_pid() WHERE instance = :instance AND epoch = :epoch"
)
_CURRENT_LEADER = sa.text(
    "SELECT instance, epoch, backend_pid, "
    "EXTRACT(EPOCH FROM now() - lease_until) AS expired_for "
    "FROM reconciler_instances WHERE role = 'leader' AND lease_until IS NOT NULL "
    "ORDER BY epoch DESC LIMIT 1"
)
_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:key)")
_LOCK_HOLDER = sa.text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = :high AND objid = :low AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_TERMINATE = sa.text("SELECT pg_terminate_backend(:pid)")


def claim_leadership(connection: Connection, instance: str) -> int:
    """Record `instance` as leader with a new epoch (max + 1), every other leader row as
    standby. Returns the new epoch."""
    now = datetime.now(UTC)
    epoch = int(connection.execute(_CLAIM, {"instance": instance, "now": now}).scalar_one())
    connection.execute(_DEMOTE_OTHERS, {"instance": instance})
    return epoch


def write_heartbeat(connection: Connection, instance: str, role: str) -> None:
    """Record `instance` in `role`, alive now (the row is created if missing)."""
    connection.execute(_HEARTBEAT, {"instance": instance, "role": role, "now": datetime.now(UTC)})


def newest_epoch(connection: Connection) -> int:
    """The highest epoch recorded (0 with no row)."""
    return int(connection.execute(_MAX_EPOCH).scalar_one())


def renew_lease(connection: Connection, instance: str, *, epoch: int, seconds: float) -> None:
    """PostgreSQL: the leader row's lease ends `seconds` from now on the server's clock,
    and it records this session as the lock's holder."""
    connection.execute(_LEASE, {"lease": seconds, "instance": instance, "epoch": epoch})


def read_current_leader(connection: Connection) -> sa.Row[str, int, int | None, float] | None:
    """PostgreSQL: the newest leader row with a lease: instance, epoch, backend_pid and
    `expired_for` (seconds since its lease ended; negative while it runs)."""
    return connection.execute(_CURRENT_LEADER).one_or_none()


def try_leader_lock(connection: Connection) -> bool:
    """PostgreSQL: take the leader's session advisory lock, without waiting."""
    return bool(connection.execute(_TRY_LOCK, {"key": LEADER_LOCK_KEY}).scalar_one())


def leader_lock_holder(connection: Connection) -> int | None:
    """PostgreSQL: the pid of the session holding the leader lock in this database."""
    parameters = {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF}
    holder = connection.execute(_LOCK_HOLDER, parameters).scalar_one_or_none()
    return None if holder is None else int(holder)


def terminate_session(connection: Connection, pid: int) -> None:
    """PostgreSQL: end the session `pid` (its advisory locks are freed with it)."""
    connection.execute(_TERMINATE, {"pid": pid})
