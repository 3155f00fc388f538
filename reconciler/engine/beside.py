"""Two calls at once: one on a thread of its own, the other on the caller's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

B = TypeVar("B")
H = TypeVar("H")


def run_beside(background: Callable[[], B], here: Callable[[], H], *, name: str) -> tuple[B, H]:
    """`(background(), here())`, `background` run on a thread named `name` while `here`
    runs on this one. The thread is joined whatever happens, so that what it uses (a
    connection) is the caller's alone again on return; an error of `here` is raised
    first, then one of `background`."""
    outcome: list[B] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(background())
        except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread
            failed.append(error)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        done = here()
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return outcome[0], done
