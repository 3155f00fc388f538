"""`fire_job`: the ONE callable every `apscheduler_jobs` row names (FIRE_CALLABLE).

Its import path is a contract: APScheduler 3 deletes rows whose callable it cannot
import, so this module and this name never move.
"""

from __future__ import annotations

import threading
from datetime import datetime

from reconciler.core.fires import FirePayload
from reconciler.dispatch.dispatcher import Dispatcher
from reconciler.errors import NotLeaderError

# The single module-level slot of this package, on purpose: APScheduler pickles a
# reference to a FUNCTION ("module:qualname") into each row, not an object, so the
# function must find the daemon's Dispatcher somewhere global. The daemon installs it
# at start (before the scheduler starts) and removes it at shutdown.
_dispatcher: Dispatcher | None = None
_slot_lock = threading.Lock()


def install_dispatcher(dispatcher: Dispatcher | None) -> Dispatcher | None:
    """Make `dispatcher` the one fire_job uses (None uninstalls). Returns the previous one."""
    global _dispatcher
    with _slot_lock:
        previous, _dispatcher = _dispatcher, dispatcher
    return previous


def current_dispatcher() -> Dispatcher:
    """The installed Dispatcher. Raises NotLeaderError when none is: a process that has
    not started dispatching has no business firing."""
    dispatcher = _dispatcher
    if dispatcher is None:
        raise NotLeaderError("no dispatcher installed in this process")
    return dispatcher


def fire_job(*, job: str, payload: FirePayload, scheduled_time: datetime | None = None) -> None:
    """Fire one slot of `job`. Called by FireExecutor with the slot's scheduled time.

    `scheduled_time` has a default only because APScheduler's `add_job` checks the
    callable's signature against the row's kwargs (job, payload), which cannot hold it.

    Returns as soon as the slot is queued for the ledger and the broker (never waits
    for either). Raises NotLeaderError if this process may not fire (fenced, or no
    dispatcher installed): APScheduler logs it as a job error and nothing is recorded.
    Raises ValueError without an aware scheduled_time (a scheduler not using
    FireExecutor: the slot, hence the fire id, is unknown).
    """
    if scheduled_time is None:
        raise ValueError("fire_job needs scheduled_time: run it with FireExecutor")
    current_dispatcher().fire(job=job, payload=payload, scheduled_time=scheduled_time)
