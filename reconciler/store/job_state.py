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

The next run time is always the state's last key, so that two states differing only in
it are the same bytes up to it (`same_but_next_run_time`): a fire's write-back is
recognised as holding what the row held without unpickling either.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from reconciler.core.fires import FIRE_CALLABLE
from reconciler.core.memo import IdentityMemo
from reconciler.core.state import SchedulerJob

EXECUTOR = "default"
_MEMO_LIMIT = 10_000


class StateCodec:
    """Pickles and loads job states, each nested pickle made or loaded once per value
    for the codec's life (see the module doc). One per owner, never a module global:
    a RowDecoder, the daemon's job store (which must load and re-pickle fired jobs with
    the same codec: its memory of trigger pickles is by the identity of the triggers it
    loaded), one call of upsert_scheduler_rows."""

    def __init__(self) -> None:
        self._trigger_pickles = IdentityMemo(_dumps, limit=_MEMO_LIMIT)
        # Keyed by what the pickle holds: the wall time, fold and the tzinfo object
        # itself (aware datetimes compare equal across zones, and within one zone
        # ignore fold).
        self._moment_pickles: dict[tuple[datetime, int, object], bytes] = {}
        # Jobs on one schedule share their next run time object (engine.apply): its
        # key above is made once per object.
        self._moment_pickles_by_object = IdentityMemo(self._moment_pickle, limit=_MEMO_LIMIT)
        self._loaded: dict[bytes, Any] = {}

    def pickle_job(self, job: SchedulerJob, next_run_time: datetime | None) -> bytes:
        """The pickled state dict of `job`, as APScheduler's `Job.__getstate__` builds it:
        `pickle_state` of that dict, built here with its trigger and next run time
        nested already (the same dict `pickle_state` pickles: the same bytes)."""
        kwargs = job.kwargs
        moment: Any = next_run_time
        if isinstance(moment, datetime):
            moment = _Nested(self._moment_pickles_by_object(moment))
        state = {
            "version": 1,
            "id": job.id,
            "func": FIRE_CALLABLE,
            "trigger": _Nested(self._trigger_pickles(job.trigger)),
            "executor": EXECUTOR,
            "args": (),
            # A dict pickles as its copy would (it is referred to once): not copied.
            "kwargs": kwargs if type(kwargs) is dict else dict(kwargs),
            "name": job.id,
            "misfire_grace_time": job.misfire_grace_time,
            "coalesce": job.coalesce,
            "max_instances": job.max_instances,
            "next_run_time": moment,  # last (module doc)
        }
        return pickle.dumps(state, pickle.HIGHEST_PROTOCOL)

    def pickle_state(self, state: Mapping[str, Any]) -> bytes:
        """A job's state dict (`Job.__getstate__()`), pickled with its trigger and next
        run time nested (see the module doc). `pickle.loads` gives back exactly `state`."""
        nested = dict(state, trigger=_Nested(self._trigger_pickles(state["trigger"])))
        if "next_run_time" in nested:  # put back last (module doc)
            moment = nested.pop("next_run_time")
            if isinstance(moment, datetime):
                moment = _Nested(self._moment_pickle(moment))
            nested["next_run_time"] = moment
        return pickle.dumps(nested, pickle.HIGHEST_PROTOCOL)

    def load_state(self, data: bytes) -> Any:
        """`pickle.loads(data)`, with nested pickles loaded once per content and shared."""
        return _StateUnpickler(io.BytesIO(data), self._load_nested).load()

    def _moment_pickle(self, moment: datetime) -> bytes:
        key = (moment.replace(tzinfo=None), moment.fold, moment.tzinfo)
        data = self._moment_pickles.get(key)
        if data is None:
            if len(self._moment_pickles) >= _MEMO_LIMIT:
                self._moment_pickles.clear()
            data = self._moment_pickles[key] = _dumps(moment)
        return data

    def _load_nested(self, data: bytes) -> Any:
        known = self._loaded.get(data)
        if known is None:
            if len(self._loaded) >= _MEMO_LIMIT:
                self._loaded.clear()
            known = self._loaded[data] = pickle.loads(data)
        return known


# How pickle_state's output ends: the key next_run_time (SHORT_BINUNICODE, MEMOIZE), its
# value, SETITEMS of the state dict, STOP. The value is None, or a nested moment: the
# memoized pickle.loads (BINGET), the moment's pickle (SHORT_BINBYTES or BINBYTES), then
# MEMOIZE, TUPLE1, MEMOIZE, REDUCE, MEMOIZE.
_LAST_KEY = b"\x8c\rnext_run_time\x94"
_END = b"u."
_MOMENT_END = b"\x94\x85\x94R\x94" + _END
_FRAMED = b"\x80\x05\x95"  # PROTO 5, FRAME and its 8-byte length


def same_but_next_run_time(old: bytes, new: bytes) -> bool:
    """True only if two states pickle_state wrote unpickle to equal values under every
    key but next_run_time: their bytes are the same from the first opcode (the frame's
    length aside) up to that key, which is the last one and followed by nothing but its
    value (None or a nested moment, which cannot touch the objects before it). False
    says nothing: equal states may pickle differently (a string shared by two keys in
    one state and not in the other)."""
    at = old.rfind(_LAST_KEY)
    if at < 0 or at != new.rfind(_LAST_KEY):
        return False
    if not (old.startswith(_FRAMED) and new.startswith(_FRAMED)):
        return False
    start = at + len(_LAST_KEY)
    if old[len(_FRAMED) + 8 : start] != new[len(_FRAMED) + 8 : start]:
        return False
    loads, loads_new = _moment_loader(old, start), _moment_loader(new, start)
    if loads is None or loads_new is None:
        return False
    return not (loads and loads_new) or loads == loads_new


def _moment_loader(state: bytes, start: int) -> bytes | None:
    """How `state` ends from `start`: b"" for None, the BINGET of the memoized
    pickle.loads for a nested moment, None for anything else."""
    tail = state[start:]
    if tail == b"N" + _END:
        return b""
    if tail[0:1] != b"h":
        return None
    if tail[2:3] == b"C":  # SHORT_BINBYTES: a 1-byte length
        end = 4 + tail[3] if len(tail) > 3 else -1
    elif tail[2:3] == b"B":  # BINBYTES: a 4-byte length
        end = 7 + int.from_bytes(tail[3:7], "little")
    else:
        return None
    return tail[:2] if tail[end:] == _MOMENT_END else None


def pickle_job(job: SchedulerJob, next_run_time: datetime | None) -> bytes:
    """StateCodec.pickle_job with a codec of its own (a single write)."""
    return StateCodec().pickle_job(job, next_run_time)


def pickle_state(state: Mapping[str, Any]) -> bytes:
    """StateCodec.pickle_state with a codec of its own (a single write)."""
    return StateCodec().pickle_state(state)


def load_state(data: bytes) -> Any:
    """StateCodec.load_state with a codec of its own (a single read)."""
    return StateCodec().load_state(data)


class _Nested:
    """Pickles as `pickle.loads(data)`: unpickles into what `data` is the pickle of."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return pickle.loads, (self.data,)


def _dumps(value: object) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


class _StateUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, load_nested: Callable[[bytes], Any]) -> None:
        super().__init__(file)
        self._load_nested = load_nested

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_pickle", "loads"):  # how pickle.loads is pickled
            return self._load_nested
        return super().find_class(module, name)
