"""Leader election on real PostgreSQL (advisory lock) and SQLite (file lock): one
leader, takeover within 5 s when the leader dies, fencing of a leader that lost it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.engine.leader import LeaderElector, leader_elector_for
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import reconciler_instances

from .helpers import wait_until

HERE = Path(__file__).resolve().parent


@pytest.fixture
def electors() -> Iterator[Callable[..., LeaderElector]]:
    made: list[LeaderElector] = []

    def make(url: str, instance: str, **options: Any) -> LeaderElector:
        elector = leader_elector_for(url, instance, **options)
        made.append(elector)
        return elector

    yield make
    for elector in made:
        elector.close()


def roles(url: str) -> dict[str, tuple[str, int]]:
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(reconciler_instances))
            return {row.instance: (row.role, row.epoch) for row in rows}
    finally:
        engine.dispose()


def acquire_within(elector: LeaderElector, seconds: float) -> float:
    """Poll try_acquire every 0.5 s like a standby; return how long it took."""
    started = time.monotonic()
    wait_until(elector.try_acquire, timeout=seconds, interval=0.5)
    return time.monotonic() - started


@pytest.mark.services
def test_exactly_one_of_two_leads(ledger_url: str, electors) -> None:
    first, second = electors(ledger_url, "a"), electors(ledger_url, "b")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.is_leader() and not second.is_leader()
    assert roles(ledger_url) == {"a": ("leader", 1), "b": ("standby", 0)}
    first.release()
    assert not first.is_leader()
    acquire_within(second, 3)
    assert second.epoch == 2
    assert roles(ledger_url) == {"a": ("standby", 1), "b": ("leader", 2)}


@pytest.mark.services
def test_a_terminated_lock_session_fences_the_leader_and_hands_over(
    ledger_url: str, pg_url: str, electors
) -> None:
    lost: list[str] = []
    first = electors(ledger_url, "a", on_lost=lost.append)
    second = electors(ledger_url, "b")
    assert first.try_acquire() and not second.try_acquire()
    engine = create_sync_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            holder = connection.execute(
                # This test's database only: parallel tests hold advisory locks of their own.
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                    "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar_one()
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
    finally:
        engine.dispose()
    assert acquire_within(second, 5) < 5
    wait_until(lambda: not first.is_leader(), timeout=3)
    wait_until(lambda: lost, timeout=3)
    assert second.epoch is not None and first.epoch is not None and second.epoch > first.epoch


class Child:
    """A leader process (leader_child.py) whose output lines are read with timeouts."""

    def __init__(self, url: str, instance: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "leader_child.py"), url, instance],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"child printed no {prefix!r} within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
        self.process.wait(5)


@pytest.fixture
def children() -> Iterator[Callable[[str, str], Child]]:
    made: list[Child] = []

    def spawn(url: str, instance: str) -> Child:
        made.append(Child(url, instance))
        return made[-1]

    yield spawn
    for child in made:
        child.stop()


@pytest.mark.services
@pytest.mark.slow
def test_a_sigkilled_leader_is_replaced_within_5_seconds(ledger_url: str, electors, children):
    child = children(ledger_url, "child")
    child.expect("LEADER", timeout=20)
    standby = electors(ledger_url, "standby")
    assert not standby.try_acquire()
    os.kill(child.process.pid, signal.SIGKILL)
    assert acquire_within(standby, 5) < 5
    assert roles(ledger_url)["standby"] == ("leader", 2)


@pytest.mark.services
@pytest.mark.slow
def test_a_paused_leader_is_replaced_and_never_leads_again(
    ledger_url: str, electors, children
) -> None:
    child = children(ledger_url, "child")
    child.expect("LEADER", timeout=20)
    standby = electors(ledger_url, "standby")
    assert not standby.try_acquire()
    os.kill(child.process.pid, signal.SIGSTOP)  # a hung leader still holds its session
    try:
        # Its lease (3 s) lapses; the standby terminates its session and leads.
        took = acquire_within(standby, 10)
        assert standby.epoch == 2 and roles(ledger_url)["standby"] == ("leader", 2)
    finally:
        os.kill(child.process.pid, signal.SIGCONT)
    child.expect("LOST", timeout=5)  # it fences itself when it wakes
    child.expect("SUPERSEDED", timeout=10)  # and never competes again
    standby.release()  # even with the lock free, the woken process does not take it
    time.sleep(1.5)
    assert roles(ledger_url)["child"][0] != "leader"
    assert took < 10


def test_sqlite_file_lock_keeps_the_second_daemon_standby(sqlite_url: str, electors) -> None:
    from reconciler.store.migrate import upgrade_database

    upgrade_database(sqlite_url)
    first, second = electors(sqlite_url, "a"), electors(sqlite_url, "b")
    assert first.try_acquire()
    assert not second.try_acquire() and not second.is_leader()
    first.release()
    acquire_within(second, 3)
    assert second.is_leader() and not first.is_leader()
    assert roles(sqlite_url) == {"a": ("standby", 1), "b": ("leader", 2)}
    second.close()
    assert roles(sqlite_url)["b"] == ("stopped", 2)
