"""Database sessions that end under their client: the bound on a frozen writer's
transaction, and telling a lost session from a refused statement.

A process frozen (SIGSTOP, a stopped VM, a GC-stalled container) inside a transaction,
after a write and before its COMMIT, holds the written rows' locks for as long as the
freeze lasts: the kernel keeps its TCP session alive, so PostgreSQL never ends it, and
the next leader's writes of those rows wait as long (an UPDATE of them; an INSERT of the
same key, even ON CONFLICT DO NOTHING, which waits for the other transaction's outcome).
The next leader's takeover terminates only the session of the leader lock.

So the leader's transactions over rows the next leader writes too (the job store's
write-back and rewind, the Dispatcher's ledger record and mark, the retrier's pass) set
`idle_in_transaction_session_timeout` for themselves only (`bound_idle`, SET LOCAL): the
server ends the session once its client is silent IDLE_SECONDS between two statements,
rolling the transaction back and freeing its locks. The server counts only that silence:
not a statement waiting on locks or running, nor the sending of its rows (the extended
protocol's Bind message, read with the timer off), so a healthy leader's transaction of
any size is never cut; the bound is set after the Python work a transaction does before
its first write, where there is much of it (a burst's encoding). A worker's ledger
writes are a statement or two each, with no work between them: its engine bounds every
transaction at connect (`idle_bounded_sessions`), no round trip added to a claim.

The woken process's next statement (or COMMIT) is refused with its session gone:
psycopg raises IdleInTransactionSessionTimeout, an InternalError, not an
OperationalError, but SQLAlchemy marks the connection invalidated (`unreachable`). The
caller retries on a new connection, or keeps its work pending, and finds, fenced, that
it no longer leads. SQLite has no such bound: a frozen writer holds the file's lock, on
a single host without failover.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# 3 s: between the statements of a bounded transaction the process runs milliseconds of
# Python at most; the leader lease is 3 s, so a process silent this long leads no more.
IDLE_SECONDS = 3.0
_BOUND_IDLE = sa.text(f"SET LOCAL idle_in_transaction_session_timeout = {int(IDLE_SECONDS * 1000)}")


def bound_idle(connection: Connection) -> None:
    """On PostgreSQL, end the current transaction's session if its client goes silent
    IDLE_SECONDS between two statements (this transaction only). Nothing on SQLite."""
    if connection.dialect.name == "postgresql":
        connection.execute(_BOUND_IDLE)


def idle_bounded_sessions(url: str) -> dict[str, object]:
    """create_engine options that bound EVERY transaction of the engine's sessions as
    `bound_idle` bounds one (PostgreSQL; none for SQLite), set once at connect, with no
    round trip per transaction. For engines whose transactions are a statement or two
    with no work between them: the workers' ledger writes (a claim, a lease renewal, a
    final write). A worker frozen inside one holds its run's row lock: the leader's
    retrier pass (expiring that run) and a redelivery's claim would wait as long."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return {}  # not a URL: creating the engine says so (store.db, a ConfigError)
    if parsed.get_backend_name() != "postgresql":
        return {}
    bound = f"-c idle_in_transaction_session_timeout={int(IDLE_SECONDS * 1000)}"
    # The URL's own `options` (a search_path, say) would be replaced by this argument.
    given = parsed.query.get("options")
    if isinstance(given, tuple):
        given = " ".join(given)
    return {"connect_args": {"options": f"{given} {bound}" if given else bound}}


def unreachable(error: Exception) -> bool:
    """True for errors about reaching the database or a session it ended (retry on a
    new connection), not about the statement."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)
