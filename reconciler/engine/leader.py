"""Leader election with a fencing token: exactly one daemon runs APScheduler.

PostgreSQL: a session advisory lock (`pg_try_advisory_lock`, store.leadership) held on a
DEDICATED autocommit connection with TCP keepalives. The server drops it the moment
that session ends (a killed process's socket closes at once), and standbys poll
`try_acquire()` every ~0.5 s, so a takeover takes well under 5 s.
SQLite (embedded, one machine): an exclusive `flock` on `<database file>.lock`.

On acquiring, the new leader bumps the EPOCH (fencing token) in `reconciler_instances`
(max over all rows + 1) and records itself as leader; older leader rows become standby.

A hung or paused leader is the dangerous case: it still believes it leads. So leadership
is a LEASE kept in memory: a health thread re-confirms it twice per `interval` (PostgreSQL:
a query on the lock connection, which also checks no newer epoch exists; SQLite: the
lock file is still the one locked) and heartbeats the instance row. `is_leader()` is
true only while the last confirmation is younger than `2 * interval` (a monotonic
deadline, so a process resumed after a long pause is fenced before its health thread
even runs). When a confirmation fails or comes too late the elector steps down at once:
it drops the lock, sets LEADER to 0 and calls `on_lost`, and the daemon stops its
scheduler. The Dispatcher checks `is_leader()` before each fire.

Roles in `reconciler_instances`: leader / standby / stopped, with `heartbeat_at`, so
`reconcile status` and the API can show who leads (and how fresh that is).

A HUNG leader (SIGSTOP, a VM pause, a stuck read) keeps its session, hence the advisory
lock, alive for ever: the kernel answers TCP keepalives for a frozen process, and only
`pg_terminate_backend(pid)` frees its lock.
So on PostgreSQL the leader row also carries a LEASE on the database's clock
(`lease_until = now() + lease`, renewed by every confirmation, lease = 3 intervals) and
the session's `backend_pid`. A standby whose lock attempt fails reads the leader row; if
the lease passed, it terminates the backend that holds the lock
(`pg_terminate_backend`, only when it is the pid the row recorded: never a newer
leader's) and takes the lock with a higher epoch. Bound: lease (3 s) + one standby poll
(0.5 s) + the termination: a hung leader is replaced within ~5 s (test_hung_leader).
Safety: the hung leader fences itself after 2 intervals (its monotonic deadline,
measured from BEFORE the confirming query), earlier than its lease ends on the server.

A leader that HUNG (its confirmation came too late) or saw a newer epoch than its own
while leading, and finds a newer epoch than its own afterwards, has been SUPERSEDED: it
never leads again in this process (`superseded`; the daemon exits with status 3 so a
supervisor restarts it as a fresh standby). Otherwise the woken process could race the
standbys and win the lock back, as it did before. A leader that lost its session to a
database restart is not hung: it competes again like any standby.

SQLite cannot do this: an flock held by a frozen process cannot be broken by another
process (and there is no server to terminate it); the frozen process fences its own
stale fires when it wakes, and a standby takes over only when it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from reconciler import metrics
from reconciler.core.vocabulary import Role
from reconciler.errors import NotLeaderError
from reconciler.store import leadership
from reconciler.store.db import create_sync_engine, is_sqlite

log = logging.getLogger(__name__)

STANDBY_HEARTBEAT_SECONDS = 5.0
LEASE_INTERVALS = 3  # the leader lease, in health intervals (see the module doc)
# Confirmations per interval. The belief lasts 2 intervals from a confirmation; confirming
# every half interval leaves a slow confirmation (a GIL held by a long pass, a loaded
# database) 1.5 intervals to land instead of 1, and a second try before the deadline.
# What a standby waits for (the lease) and when we stop believing are unchanged.
CONFIRMS_PER_INTERVAL = 2

LostCallback = Callable[[str], None]


def default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderElector(ABC):
    """Who leads. Thread-safe. Use: poll `try_acquire()` until True, fire while
    `is_leader()`, `release()` to hand over, `close()` at exit.

    `on_lost(reason)` is called from the health thread when leadership is lost.
    """

    def __init__(
        self, *, instance_id: str, interval: float = 1.0, on_lost: LostCallback | None = None
    ) -> None:
        self.instance_id = instance_id
        self.interval = interval
        self.on_lost = on_lost
        self.epoch: int | None = None
        self._leader = False
        self._confirmed_at = 0.0
        self._lock = threading.RLock()  # serialises use of the lock connection / file
        self._health_stop = threading.Event()
        self._health: threading.Thread | None = None
        self._last_standby_beat = 0.0
        self.superseded = False  # another leader came after us: never lead again
        self._hung = False  # stepped down because we were too slow or fenced

    # --- public API -------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """Try once, without blocking, to become leader. True if this process leads now.
        Database errors count as "no" (and are logged): the caller polls again."""
        with self._lock:
            if self._leader:
                return self.is_leader()
            if self.superseded:
                return False
            began = time.monotonic()
            try:
                if self._hung and self.epoch is not None and self._newest_epoch() > self.epoch:
                    self._drop_lock()
                    self._supersede(f"a newer leader took over from epoch {self.epoch}")
                    return False
                if not self._try_lock():
                    self._standby_heartbeat()
                    return False
                self.epoch = self._claim()
            except (sa.exc.SQLAlchemyError, OSError) as error:
                log.warning("leader election: %s", error)
                self._drop_lock()
                return False
            self._leader, self._confirmed_at = True, began
        metrics.LEADER.set(1)
        log.info("%s is leader (epoch %s)", self.instance_id, self.epoch)
        self._start_health()
        return True

    def is_leader(self) -> bool:
        """True while leadership was confirmed less than 2 intervals ago (monotonic)."""
        return self._leader and time.monotonic() - self._confirmed_at < 2 * self.interval

    def release(self) -> None:
        """Stop leading (the lock goes to a standby). Idempotent."""
        self._stop_health()
        with self._lock:
            was_leader, self._leader = self._leader, False
            if was_leader:
                self._write_role(Role.STANDBY)
            self._drop_lock()
        metrics.LEADER.set(0)

    def close(self) -> None:
        """Release, record this instance as stopped, free every resource."""
        self.release()
        with self._lock:
            self._write_role(Role.STOPPED)
            self._dispose()

    def wait_for_leadership(self, stop: threading.Event, *, poll: float = 0.5) -> bool:
        """Poll `try_acquire` every `poll` s until it succeeds (True), `stop` is set or
        this process is superseded (False)."""
        while not stop.is_set() and not self.superseded:
            if self.try_acquire():
                return True
            stop.wait(poll)
        return False

    # --- the health thread ------------------------------------------------------------
    def _start_health(self) -> None:
        self._health_stop.clear()
        self._health = threading.Thread(target=self._watch, name="leader-health", daemon=True)
        self._health.start()

    def _stop_health(self) -> None:
        self._health_stop.set()
        thread, self._health = self._health, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5 * self.interval)

    def _watch(self) -> None:
        while not self._health_stop.wait(self.interval / CONFIRMS_PER_INTERVAL):
            if time.monotonic() - self._confirmed_at >= 2 * self.interval:
                self._hung = True
                self._step_down("leadership not confirmed in time (process paused or hung?)")
                return
            # The lease the server grants starts when the query runs: count ours from
            # before it, so that we always stop believing first.
            began = time.monotonic()
            try:
                with self._lock:
                    self._confirm()
            except LeadershipLost as error:
                self._hung = True
                self._supersede(str(error))
                self._step_down(f"superseded: {error}")
                return
            except (sa.exc.SQLAlchemyError, OSError) as error:
                self._step_down(f"leadership check failed: {error}")
                return
            if time.monotonic() - self._confirmed_at >= 2 * self.interval:
                # Confirmed, but too late: is_leader() has already said no to someone,
                # and flipping back to yes would make the fence meaningless.
                self._hung = True
                self._step_down("leadership confirmed too late (check hung)")
                return
            self._confirmed_at = began

    def _step_down(self, reason: str) -> None:
        with self._lock:
            if not self._leader:
                return
            self._leader = False
            self._drop_lock()
        metrics.LEADER.set(0)
        log.error("%s lost the leadership: %s", self.instance_id, reason)
        if self.on_lost is not None:
            self.on_lost(reason)

    def _supersede(self, reason: str) -> None:
        if not self.superseded:
            self.superseded = True
            log.error(
                "%s was superseded (%s): it will not lead again; restart it to stand by",
                self.instance_id,
                reason,
            )

    def _newest_epoch(self) -> int:
        """The highest epoch recorded (0 on any doubt: it only ever stops a claim)."""
        return 0

    def _standby_heartbeat(self) -> None:
        if time.monotonic() - self._last_standby_beat >= STANDBY_HEARTBEAT_SECONDS:
            self._write_role(Role.STANDBY)
            self._last_standby_beat = time.monotonic()

    def _write_role(self, role: str) -> None:
        try:
            self._execute_role(role)
        except (sa.exc.SQLAlchemyError, OSError) as error:
            log.warning("recording role %s of %s failed: %s", role, self.instance_id, error)

    # --- per backend --------------------------------------------------------------------
    @abstractmethod
    def _try_lock(self) -> bool: ...

    @abstractmethod
    def _claim(self) -> int:
        """Bump the epoch, record this instance as leader, return the new epoch."""

    @abstractmethod
    def _confirm(self) -> None:
        """Prove the lock is still ours and heartbeat. Raise if it is not."""

    @abstractmethod
    def _execute_role(self, role: str) -> None: ...

    @abstractmethod
    def _drop_lock(self) -> None: ...

    @abstractmethod
    def _dispose(self) -> None: ...


class LeadershipLost(NotLeaderError):
    """Raised by a confirmation that found another leader (a newer epoch)."""


class PostgresLeaderElector(LeaderElector):
    """Session advisory lock on a dedicated connection (see the module doc)."""

    def __init__(self, database_url: str, **options: Any) -> None:
        super().__init__(**options)
        self._engine = create_sync_engine(
            database_url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": 3,
                "keepalives": 1,
                "keepalives_idle": 2,
                "keepalives_interval": 1,
                "keepalives_count": 2,
                # A write the server never acknowledges fails after 3 s, not 15 minutes.
                "tcp_user_timeout": 3000,
                "application_name": "reconciler-leader",
            },
        )
        self._connection: Connection | None = None

    def _conn(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def _try_lock(self) -> bool:
        if self._lock_once():
            return True
        if not self._terminate_expired_leader():
            return False
        # The terminated session ends asynchronously: poll the lock briefly.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if self._lock_once():
                return True
            time.sleep(0.05)
        return False

    def _lock_once(self) -> bool:
        return leadership.try_leader_lock(self._conn())

    def _terminate_expired_leader(self) -> bool:
        """If the recorded leader's lease passed and its recorded session still holds
        the lock, terminate that session (a hung leader). True if terminated."""
        connection = self._conn()
        row = leadership.read_current_leader(connection)
        if row is None or row.expired_for is None or float(row.expired_for) <= 0:
            return False
        holder = leadership.leader_lock_holder(connection)
        if holder is None or holder != row.backend_pid:
            return False  # free already, or a newer leader that has not recorded itself
        log.warning(
            "leader %s (epoch %s) let its lease lapse %.1f s ago: terminating its session %s",
            row.instance,
            row.epoch,
            float(row.expired_for),
            holder,
        )
        leadership.terminate_session(connection, holder)
        return True

    def _claim(self) -> int:
        connection = self._conn()
        epoch = leadership.claim_leadership(connection, self.instance_id)
        self._renew_lease(connection, epoch)
        return epoch

    def _renew_lease(self, connection: Connection, epoch: int) -> None:
        leadership.renew_lease(
            connection, self.instance_id, epoch=epoch, seconds=LEASE_INTERVALS * self.interval
        )

    def _newest_epoch(self) -> int:
        return leadership.newest_epoch(self._conn())

    def _confirm(self) -> None:
        connection = self._conn()
        newest = leadership.newest_epoch(connection)
        if self.epoch is not None and newest > self.epoch:
            raise LeadershipLost(f"epoch {newest} is newer than ours ({self.epoch})")
        leadership.write_heartbeat(connection, self.instance_id, Role.LEADER)
        if self.epoch is not None:
            self._renew_lease(connection, self.epoch)

    def _execute_role(self, role: str) -> None:
        leadership.write_heartbeat(self._conn(), self.instance_id, role)

    def _drop_lock(self) -> None:
        # Closing the session is what frees the lock, whatever state the connection is in.
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError, OSError):
                connection.close()

    def _dispose(self) -> None:
        self._drop_lock()
        self._engine.dispose()


class SqliteLeaderElector(LeaderElector):
    """One machine: an exclusive flock on `<database file>.lock`."""

    def __init__(self, database_url: str, **options: Any) -> None:
        super().__init__(**options)
        self._engine: Engine = create_sync_engine(database_url)
        database = sa.engine.make_url(database_url).database
        if not database or database == ":memory:":
            raise ValueError("leader election on SQLite needs a database file")
        self.lock_path = Path(database + ".lock")
        self._fd: int | None = None

    def _try_lock(self) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _claim(self) -> int:
        with self._engine.begin() as connection:
            return leadership.claim_leadership(connection, self.instance_id)

    def _confirm(self) -> None:
        # The lock cannot be taken from us, but the file can be deleted or replaced,
        # after which another process could lock the new one.
        if self._fd is None:
            raise LeadershipLost("lock file closed")
        if os.fstat(self._fd).st_ino != os.stat(self.lock_path).st_ino:
            raise LeadershipLost(f"{self.lock_path} was replaced")
        with contextlib.suppress(sa.exc.OperationalError):  # a busy database is no loss
            self._execute_role(Role.LEADER)

    def _execute_role(self, role: str) -> None:
        with self._engine.begin() as connection:
            leadership.write_heartbeat(connection, self.instance_id, role)

    def _drop_lock(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def _dispose(self) -> None:
        self._drop_lock()
        self._engine.dispose()


def leader_elector_for(
    database_url: str,
    instance_id: str | None = None,
    *,
    interval: float = 1.0,
    on_lost: LostCallback | None = None,
) -> LeaderElector:
    """The elector for this database: advisory lock (PostgreSQL) or file lock (SQLite).
    `instance_id` defaults to host:pid. Connects lazily (on the first try_acquire)."""
    options = {
        "instance_id": instance_id or default_instance_id(),
        "interval": interval,
        "on_lost": on_lost,
    }
    if is_sqlite(database_url):
        return SqliteLeaderElector(database_url, **options)
    return PostgresLeaderElector(database_url, **options)
