"""A leader frozen (SIGSTOP) INSIDE its ledger transaction, after the INSERT of a fired
slot and before its COMMIT, holds that row's lock: the kernel keeps its session alive,
so PostgreSQL never ends it. The next leader's record of the same slot (an INSERT ... ON
CONFLICT waits for the other transaction's outcome) waited for as long as the freeze
lasted: nothing was published. Now the Dispatcher's ledger transactions bound their
silence (store.sessions.bound_idle): the server ends the frozen transaction after
IDLE_SECONDS, and the next leader records and publishes the slot within that bound.

The woken process finds its transaction ended (an InternalError on a lost connection,
which its retries used not to cover: the batch was dropped with a traceback), retries
it as a process that no longer leads (late), and hands the slot over, or records it
due at once for the leader's retrier if the next leader has not recorded it yet. Each
slot in the ledger once, published once.

The child is a real Dispatcher in its own process (tests/dispatch/frozen_recorder.py),
frozen by itself right after its real insert; only that process is ever frozen."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.core.fires import fire_id
from reconciler.store.db import create_sync_engine
from reconciler.store.sessions import IDLE_SECONDS
from tests.conftest import REPO_ROOT

from .conftest import Broker
from .helpers import Fence, add_to_inventory, drain_queue, make_payload, make_spec, runs, wait_until
from .test_dispatcher import Stack

pytestmark = [pytest.mark.services, pytest.mark.slow]

SLOT = datetime.now(UTC).replace(microsecond=0)
# Beyond the bound, for the next leader's record and publish on a loaded machine.
MARGIN = 4.0
ACTIVITY = (
    "SELECT pid, state, wait_event_type, left(query, 60) FROM pg_stat_activity "
    "WHERE datname = current_database()"
)


class FrozenRecorder:
    """The child process (tests/dispatch/frozen_recorder.py) and what it printed."""

    def __init__(self, process: subprocess.Popen[bytes], folder: Path) -> None:
        self.process = process
        self.folder = folder
        self.leader_file = folder / "leader"

    def stdout(self) -> str:
        return (self.folder / "stdout").read_text()

    def stderr(self) -> str:
        return (self.folder / "stderr").read_text()

    def backend(self) -> int | None:
        """The child's database session, once it has frozen inside its transaction."""
        for line in self.stdout().splitlines():
            if line.startswith("FROZEN "):
                return int(line.split()[1])
        return None

    def stopped(self) -> bool:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def resume(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def calls(self) -> list[dict[str, Any]]:
        """Its record_batch calls (printed once it has settled)."""
        self.process.wait(60)
        assert self.process.returncode == 0, self.stderr()[-3000:]
        line = next(x for x in self.stdout().splitlines() if x.startswith("CALLS "))
        calls: list[dict[str, Any]] = json.loads(line.removeprefix("CALLS "))
        return calls


@contextlib.contextmanager
def frozen_recorder(url: str, broker: Broker, folder: Path) -> Iterator[FrozenRecorder]:
    """A leader frozen inside its ledger transaction holding the row of SLOT; continued
    and ended (if still running) on exit."""
    folder.mkdir()
    (folder / "leader").touch()
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        arguments = [url, broker.url, broker.queue, str(folder / "leader"), SLOT.isoformat()]
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.dispatch.frozen_recorder", *arguments],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=err,
        )
    child = FrozenRecorder(process, folder)
    try:
        wait_until(
            lambda: child.backend() and child.stopped(),
            timeout=30,
            what="the child frozen after its insert",
            evidence=child.stderr,
        )
        yield child
    finally:
        child.resume()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
        if process.poll() is None:
            process.kill()
            process.wait()


def session_state(engine: sa.Engine, backend: int) -> str | None:
    with engine.connect() as connection:
        state: str | None = connection.execute(
            sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}
        ).scalar()
    return state


def bounded_engine(url: str) -> sa.Engine:
    """The next leader's engine: a statement still waiting on the frozen transaction
    past the bound is cancelled by the server, so a regression fails, never hangs."""
    timeout = int((IDLE_SECONDS + MARGIN) * 1000)
    return create_sync_engine(url, connect_args={"options": f"-c statement_timeout={timeout}"})


def statuses(engine: sa.Engine) -> list[tuple[str, int]]:
    return [(row.status, row.duplicates) for row in runs(engine, "sweep")]


def test_the_next_leader_records_a_slot_a_frozen_leader_holds_within_the_bound(
    engine: sa.Engine, ledger_url: str, broker: Broker, tmp_path: Path
) -> None:
    payload = make_payload(make_spec("sweep", queue=broker.queue))
    new_engine = bounded_engine(ledger_url)
    new = Stack(new_engine, broker.url, Fence(True))
    try:
        with frozen_recorder(ledger_url, broker, tmp_path / "child") as child:
            backend = child.backend()
            assert backend is not None
            wait_until(
                lambda: session_state(engine, backend) == "idle in transaction",
                timeout=10,
                what="the frozen transaction idle",
                evidence=lambda: f"{_rows(engine, ACTIVITY)}\n{child.stderr()[-2000:]}",
            )
            frozen_at = time.monotonic()
            child.leader_file.unlink()  # the next leader takes over
            new.dispatcher.take_over(at=SLOT + timedelta(seconds=1))
            new.start().dispatcher.fire(job="sweep", payload=payload, scheduled_time=SLOT)
            wait_until(
                lambda: statuses(engine) == [("published", 0)],
                timeout=IDLE_SECONDS + MARGIN,
                what="the next leader's record and publish of the slot the frozen one holds",
                evidence=lambda: f"{_rows(engine, ACTIVITY)}\n{child.stderr()[-2000:]}",
            )
            published = time.monotonic() - frozen_at
            assert session_state(engine, backend) is None  # the server ended it
        calls = child.calls()
    finally:
        new.stop()
        new_engine.dispose()

    slot = fire_id("sweep", SLOT)
    # The frozen attempt inserted the slot as the leader; its retry, woken without the
    # lead, found it recorded by the next leader: handed over, nothing to publish.
    assert calls[0] == {"late": False, "to_publish": [slot], "handed_over": [], "duplicates": []}
    assert calls[-1] == {"late": True, "to_publish": [], "handed_over": [slot], "duplicates": []}
    log = child.stderr()
    assert "ledger write failed (retry in" in log
    assert "the next leader's, not published here" in log
    assert "recording a batch" not in log  # the batch was not given up
    assert statuses(engine) == [("published", 0)]
    assert len(drain_queue(broker.url, broker.queue)) == 1
    print(f"\npublished {published:.2f} s after the freeze (bound {IDLE_SECONDS} s)")


def test_a_slot_the_woken_leader_records_first_is_published_once_at_once(
    engine: sa.Engine, ledger_url: str, broker: Broker, tmp_path: Path
) -> None:
    """The other order: the server has ended the frozen transaction (its insert rolled
    back) and the next leader leads but has not fired the slot yet when the frozen one
    wakes. Its retry records the slot late: due at once for the leader's retrier (not
    after the 30 s publish grace its first attempt set); the next leader's own fire of
    it, due at its takeover, is handed over. Published once, promptly."""
    spec = make_spec("sweep", queue=broker.queue)
    add_to_inventory(engine, spec)  # the new leader's retrier publishes from it
    new = Stack(engine, broker.url, Fence(True))
    try:
        with frozen_recorder(ledger_url, broker, tmp_path / "child") as child:
            backend = child.backend()
            assert backend is not None
            child.leader_file.unlink()  # the next leader takes over
            new.dispatcher.take_over(at=SLOT + timedelta(seconds=1))
            new.start()  # its retrier's first pass runs before the late record
            wait_until(
                lambda: session_state(engine, backend) is None,
                timeout=IDLE_SECONDS + MARGIN,
                what="the server ending the frozen transaction",
                evidence=lambda: str(_rows(engine, ACTIVITY)),
            )
            assert runs(engine) == []  # rolled back
            resumed_at = time.monotonic()
            child.resume()
            wait_until(
                lambda: statuses(engine) == [("published", 0)],
                timeout=MARGIN,
                what="the late row published by the next leader's retrier",
                evidence=lambda: f"{runs(engine)}\n{child.stderr()[-2000:]}",
            )
            published = time.monotonic() - resumed_at
            calls = child.calls()
        new.dispatcher.fire(job="sweep", payload=make_payload(spec), scheduled_time=SLOT)
        wait_until(lambda: not new.dispatcher.in_flight(), timeout=10)
    finally:
        new.stop()

    slot = fire_id("sweep", SLOT)
    assert calls[-1] == {"late": True, "to_publish": [slot], "handed_over": [], "duplicates": []}
    assert statuses(engine) == [("published", 0)]
    assert len(drain_queue(broker.url, broker.queue)) == 1
    print(f"\nthe late row published {published:.2f} s after the leader woke")


def _rows(engine: sa.Engine, query: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(query)))
