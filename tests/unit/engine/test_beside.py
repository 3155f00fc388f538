"""run_beside: both results, errors in order, the thread joined, and a background
thread doing I/O not starved by a caller busy in Python (the GIL's switch interval)."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from reconciler.engine.beside import SWITCH_INTERVAL, run_beside


def test_both_results_and_the_thread_joined() -> None:
    seen: list[str] = []

    def background() -> str:
        seen.append(threading.current_thread().name)
        return "b"

    assert run_beside(background, lambda: "h", name="beside-test") == ("b", "h")
    assert seen == ["beside-test"]
    assert not any(t.name == "beside-test" for t in threading.enumerate())


def test_the_callers_error_first_then_the_threads() -> None:
    def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match="here"):
        run_beside(lambda: fail("background"), lambda: fail("here"), name="t")
    with pytest.raises(ValueError, match="background"):
        run_beside(lambda: fail("background"), lambda: None, name="t")


def test_the_switch_interval_is_lowered_then_restored() -> None:
    before = sys.getswitchinterval()
    during = run_beside(sys.getswitchinterval, sys.getswitchinterval, name="t")
    assert during == (SWITCH_INTERVAL, SWITCH_INTERVAL)
    assert sys.getswitchinterval() == before
    with pytest.raises(ZeroDivisionError):
        run_beside(lambda: None, lambda: 1 / 0, name="t")
    assert sys.getswitchinterval() == before


WAITS = 200


def _waits_while_busy() -> float:
    """Seconds a caller busy in Python runs beside a thread making WAITS short blocking
    calls, as a thread reading a pipe its writer has not filled yet does: each releases
    the GIL, the caller takes it, and the thread waits for it back. At the default 5 ms
    switch interval that is 1 s at least."""
    busy, done = threading.Event(), threading.Event()

    def background() -> None:
        busy.wait()  # the waits start once the caller is busy
        for _ in range(WAITS):
            time.sleep(0.0001)
        done.set()

    def here() -> float:
        started = time.monotonic()
        busy.set()
        spins = 0
        while not done.is_set() and time.monotonic() - started < 30:
            spins += 1  # pure Python: holds the GIL until asked to drop it
        return time.monotonic() - started

    _, took = run_beside(background, here, name="waiter")
    return took


def test_a_thread_doing_io_is_not_starved_by_a_busy_caller() -> None:
    # WAITS at the default interval cannot take less than 1 s, however quiet the
    # machine; beside, each waits 0.5 ms at most for the GIL (~0.4 s in all on a quiet
    # machine). The best of three: a busy machine only adds time, to either.
    assert min(_waits_while_busy() for _ in range(3)) < 0.9
