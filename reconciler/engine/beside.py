"""Two calls at once: one on a thread of its own, the other on the caller's."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

B = TypeVar("B")
H = TypeVar("H")

# The GIL's switch interval while both run. The thread beside does I/O (reads a forked
# child's pipe, sends COPY data): every read or write releases the GIL, and it gets it
# back only when the interpreter asks the caller's thread, busy in Python, to drop it —
# after the switch interval, 5 ms by default. At 100,000 jobs the thread read the
# rows child's ~100 MB in 64 KB reads, most of them waiting those 5 ms while the CLI
# rendered the plan: it finished after the render instead of beside it (bench/RESULTS.md,
# "the GIL's switch interval"). At 0.5 ms the caller's thread pays a few more switches.
SWITCH_INTERVAL = 0.0005


def run_beside(background: Callable[[], B], here: Callable[[], H], *, name: str) -> tuple[B, H]:
    """`(background(), here())`, `background` run on a thread named `name` while `here`
    runs on this one. The thread is joined whatever happens, so that what it uses (a
    connection) is the caller's alone again on return; an error of `here` is raised
    first, then one of `background`. The GIL's switch interval is SWITCH_INTERVAL at
    most until then (the process's own is restored)."""
    outcome: list[B] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(background())
        except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread
            failed.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    try:
        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        try:
            done = here()
        finally:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    if failed:
        raise failed[0]
    return outcome[0], done
