"""The leader's health thread confirms its lease twice per interval: a confirmation
slowed by a long pass (the GIL) or a loaded database has 1.5 intervals to land, not 1,
before the leader stops believing it leads (engine/leader.py)."""

from __future__ import annotations

import time

from reconciler.engine.leader import LeaderElector


class CountingElector(LeaderElector):
    """The health logic alone: a lock that is always ours, confirmations counted and
    slowed by `delay` seconds each."""

    def __init__(self, *, delay: float = 0.0, **options: object) -> None:
        super().__init__(instance_id="counting", **options)  # type: ignore[arg-type]
        self.delay = delay
        self.confirmations = 0
        self.lost: list[str] = []
        self.on_lost = self.lost.append

    def _try_lock(self) -> bool:
        return True

    def _claim(self) -> int:
        return 1

    def _confirm(self) -> None:
        time.sleep(self.delay)
        self.confirmations += 1

    def _execute_role(self, role: str) -> None:
        pass

    def _drop_lock(self) -> None:
        pass

    def _dispose(self) -> None:
        pass


def test_the_lease_is_confirmed_twice_per_interval() -> None:
    elector = CountingElector(interval=0.5)
    assert elector.try_acquire()
    try:
        time.sleep(2.2)  # 4.4 intervals: 8 confirmations (one per interval would give 4)
        assert elector.confirmations >= 6
        assert elector.is_leader()
    finally:
        elector.close()


def test_a_confirmation_taking_more_than_half_an_interval_keeps_the_leadership() -> None:
    # Confirmed once per interval, a confirmation of 0.55 intervals landed 2.1 intervals
    # after the one before it began (1 + 2 x 0.55): past the 2-interval belief, the
    # leader stepped down. Twice per interval: 0.5 + 2 x 0.55 = 1.6 intervals.
    elector = CountingElector(interval=1.0, delay=0.55)
    assert elector.try_acquire()
    try:
        time.sleep(4.0)
        assert elector.lost == []
        assert elector.is_leader()
    finally:
        elector.close()
