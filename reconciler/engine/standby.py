"""What a standby daemon says about the leadership: who leads, when that changes, and
that it took over. A thread that reads `reconciler_instances` every few seconds while
this process is not the leader (the read model's one rule: highest epoch, alive while
it heartbeats), and logs only changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from reconciler.core.moments import rfc3339
from reconciler.core.status import pick_leader, shape_instances
from reconciler.core.vocabulary import LeaderState
from reconciler.store.status import read_instances

log = logging.getLogger("reconciler.engine.leader")
WATCH_SECONDS = 2.0


class LeaderWatch:
    def __init__(self, *, engine: Engine, instance_id: str, is_leader: Callable[[], bool]) -> None:
        self._engine = engine
        self._me = instance_id
        self._is_leader = is_leader
        self._seen: tuple[LeaderState, str | None, int | None] | None = None
        self.last_leader: str | None = None  # the last other instance seen leading
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            if not self._is_leader():
                self.observe()

    def observe(self) -> None:
        try:
            with self._engine.connect() as connection:
                found = read_instances(connection)
        except Exception as error:  # noqa: BLE001 - a log line must never stop the daemon
            log.debug("reading the leader failed: %r", error)
            return
        state, leader = pick_leader(shape_instances(found, now=datetime.now(UTC)))
        name = None if leader is None else str(leader["instance"])
        epoch = None if leader is None else int(leader["epoch"])
        if (state, name, epoch) == self._seen or name == self._me:
            return
        self._seen = (state, name, epoch)
        if leader is None:
            log.warning("%s is standby: no leader", self._me)
            return
        self.last_leader = name
        heartbeat = rfc3339(leader["heartbeat_at"])
        if state is LeaderState.ALIVE:
            log.info("%s is standby: %s leads (epoch %s)", self._me, name, epoch)
        else:
            log.warning(
                "%s is standby: leader %s (epoch %s) is stale, last heartbeat %s",
                self._me,
                name,
                epoch,
                heartbeat,
            )

    def took_over(self, epoch: int | None) -> None:
        """Log the takeover once this process leads."""
        if self.last_leader:
            log.warning(
                "%s took over the leadership from %s (epoch %s)", self._me, self.last_leader, epoch
            )
        self._seen = None
