"""The pickled `job_state` of an `apscheduler_jobs` row: written in the exact format
APScheduler's `SQLAlchemyJobStore` reads (a pickled `Job.__getstate__()` dict, loaded
with plain `pickle.loads`), but made and read cheaply.

Two values of a state are costly to pickle and shared between rows: the trigger (a
CronTrigger's Python `__getstate__` walks its eight fields; triggers are shared by
jobs with the same schedule, see core.triggers) and the next run time (a zone-aware
datetime pickles through three reducers; jobs on one schedule share it). Each
is stored as a nested pickle, `pickle.loads(<its own pickle>)`, made once per value:
plain unpickling gives back exactly the same state. `load_state` loads each nested
pickle once per distinct content and shares the result (all of these are immutable),
so a row the scheduler rewrote after a fire decodes in microseconds.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.core.fires import FIRE_CALLABLE
from reconciler.core.memo import IdentityMemo
from reconciler.core.state import SchedulerJob

EXECUTOR = "default"
_MEMO_LIMIT = 10_000


def pickle_job(job: SchedulerJob, next_run_time: datetime | None) -> bytes:
    """The pickled state dict of `job`, as APScheduler's `Job.__getstate__` builds it."""
    state = {
        "version": 1,
        "id": job.id,
        "func": FIRE_CALLABLE,
        "trigger": job.trigger,
        "executor": EXECUTOR,
        "args": (),
        "kwargs": dict(job.kwargs),
        "name": job.id,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "next_run_time": next_run_time,
    }
    return pickle_state(state)


def pickle_state(state: Mapping[str, Any]) -> bytes:
    """A job's state dict (`Job.__getstate__()`), pickled with its trigger and next run
    time nested (see the module doc). `pickle.loads` gives back exactly `state`."""
    nested = dict(state, trigger=_Nested(_trigger_pickle(state["trigger"])))
    moment = state.get("next_run_time")
    if isinstance(moment, datetime):
        nested["next_run_time"] = _Nested(_moment_pickle(moment))
    return pickle.dumps(nested, pickle.HIGHEST_PROTOCOL)


def load_state(data: bytes) -> Any:
    """`pickle.loads(data)`, with nested pickles loaded once per content and shared."""
    return _StateUnpickler(io.BytesIO(data)).load()


class _Nested:
    """Pickles as `pickle.loads(data)`: unpickles into what `data` is the pickle of."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return pickle.loads, (self.data,)


def _dumps(value: object) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


_trigger_pickle = IdentityMemo(_dumps, limit=_MEMO_LIMIT)


def _moment_pickle(moment: datetime) -> bytes:
    # Keyed by what the pickle holds: the wall time, fold and the tzinfo object itself
    # (aware datetimes compare equal across zones, and within one zone ignore fold).
    key = (moment.replace(tzinfo=None), moment.fold, moment.tzinfo)
    data = _MOMENT_PICKLES.get(key)
    if data is None:
        if len(_MOMENT_PICKLES) >= _MEMO_LIMIT:
            _MOMENT_PICKLES.clear()
        data = _MOMENT_PICKLES[key] = _dumps(moment)
    return data


_MOMENT_PICKLES: dict[tuple[datetime, int, object], bytes] = {}


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_pickle", "loads"):  # how pickle.loads is pickled
            return _load_nested
        return super().find_class(module, name)


def _load_nested(data: bytes) -> Any:
    known = _LOADED.get(data)
    if known is None:
        if len(_LOADED) >= _MEMO_LIMIT:
            _LOADED.clear()
        known = _LOADED[data] = pickle.loads(data)
    return known


_LOADED: dict[bytes, Any] = {}
