"""Polling for tests that watch real processes: one `wait_until` for every folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "",
    evidence: Callable[[], str] | None = None,
) -> Any:
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout` s.
    The failure says what was awaited and, if given, `evidence()` (process logs, ledger
    rows: what a CI log keeps when the run cannot be repeated)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            found = f"\n{evidence()}" if evidence is not None else ""
            raise AssertionError(f"{what or 'condition'} not met within {timeout} s{found}")
        time.sleep(interval)
