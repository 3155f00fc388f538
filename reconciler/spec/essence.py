"""The essence of a job spec: its canonical JSON and the stable hash over it.

Like `kubectl apply`'s last-applied state, the essence is what the user declared, with
defaults made explicit: two files that mean the same job have the same essence, however
they are formatted, ordered or commented. Diffs and drift checks compare essences.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from pydantic import BaseModel

from reconciler.spec.floats import holds_float
from reconciler.spec.model import CronSchedule, DateSchedule, JobSpec


def essence(spec: JobSpec) -> dict[str, Any]:
    """The spec as plain JSON data: defaults explicit, absent optionals left out; exactly
    `spec.model_dump(mode="json", exclude_none=True)` without `previous_names`.

    `previous_names` is identity history, not content: declaring it changes nothing a
    job does (no update), and jobs applied before the field existed keep their hash."""
    return _essence_and_floats(spec)[0]


def essence_and_hash(spec: JobSpec) -> tuple[dict[str, Any], str]:
    """`essence(spec)` and its hash (`hash_essence`), searching only `args` and `kwargs`
    for floats: no other field can hold one (each is text, an integer, a boolean, or a
    moment spelled as text; tests/spec/test_load_work_reference.py)."""
    data, floats = _essence_and_floats(spec)
    if not floats:
        try:
            # orjson's bytes are the canonical text's UTF-8 (canonical_json): not
            # decoded to be encoded again.
            text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
        else:
            return data, hashlib.sha256(text).hexdigest()
    return data, _sha256_hex(canonical_json(data, floats=floats))


# Built from the validated fields rather than by pydantic's dump, which was half of a
# job's essence and hash: the fields are plain text, integers and booleans but for those
# converted here (tests/spec/test_checks_reference.py keeps that list complete, and the
# result equal to the dump). What pydantic's JSON dump spells its own way is left to it:
# moments (`start`, `end`, `at`: dumped by their models), and a dict key that is not
# UTF-8 (a lone surrogate, which it replaces): such a job is dumped by pydantic whole.


class _NeedsDump(Exception):
    """A value the JSON dump spells differently from the value itself."""


def _essence_and_floats(spec: JobSpec) -> tuple[dict[str, Any], bool]:
    """The essence, and whether its `args` or `kwargs` hold a float."""
    fields = spec.__dict__
    try:
        args, args_floats = _json_copy(fields["args"])
        kwargs, kwargs_floats = _json_copy(fields["kwargs"])
        labels = _json_copy(fields["labels"])[0]
        schedule = _schedule_data(fields["schedule"])
    except _NeedsDump:
        data = spec.model_dump(mode="json", exclude_none=True)
        # Removed here rather than excluded by the dump: pydantic's `exclude` cost a
        # sixth of every dump (a list, never None, so the key is always there).
        del data["previous_names"]
        return data, holds_float(data["args"]) or holds_float(data["kwargs"])
    # In the fields' order, as the dump (a key assigned again keeps its place).
    data = {key: value for key, value in fields.items() if value is not None}
    del data["previous_names"]
    data["schedule"] = schedule
    data["args"] = args
    data["kwargs"] = kwargs
    data["labels"] = labels
    dst = fields["dst"]
    if dst is not None:
        data["dst"] = _set_fields(dst)
    if fields["start"] is not None or fields["end"] is not None:
        data.update(spec.model_dump(mode="json", include={"start", "end"}, exclude_none=True))
    return data, args_floats or kwargs_floats


def _schedule_data(schedule: BaseModel) -> dict[str, Any]:
    if type(schedule) is CronSchedule:
        cron = schedule.cron
        return {"cron": cron if isinstance(cron, str) else _set_fields(cron)}
    if type(schedule) is DateSchedule:
        return schedule.model_dump(mode="json")
    return {key: _set_fields(value) for key, value in schedule.__dict__.items()}


def _set_fields(model: BaseModel) -> dict[str, Any]:
    """A model of plain fields (CronFieldMap, Interval, DstPolicySpec) without its Nones."""
    return {key: value for key, value in model.__dict__.items() if value is not None}


def _json_copy(value: Any) -> tuple[Any, bool]:
    """A JSON list or dict copied as pydantic's JSON dump gives it, and whether it holds
    a float. Raises _NeedsDump (see above)."""
    floats = False
    if type(value) is dict:
        copy: Any = {}
        for key, item in value.items():
            if not key.isascii() and not _is_utf8(key):
                raise _NeedsDump
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                copy[key] = item
            elif kind is float:
                copy[key], floats = item, True
            else:
                copy[key], inner = _json_copy(item)
                floats = floats or inner
        return copy, floats
    if type(value) is list:
        copy = []
        for item in value:
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                copy.append(item)
            elif kind is float:
                copy.append(item)
                floats = True
            else:
                item, inner = _json_copy(item)
                copy.append(item)
                floats = floats or inner
        return copy, floats
    raise _NeedsDump


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def canonical_json(data: Any, *, floats: bool | None = None) -> str:
    """One byte-exact text per value: sorted keys, no spaces, UTF-8 kept as is; exactly
    `json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, the
    spelling every stored hash was made with.

    orjson writes the same text in a fraction of the time, except for floats (it spells
    exponents `1e16`, json `1e+16`), integers beyond 64 bits and lone surrogates (it
    refuses them): data holding any of these goes through json
    (tests/spec/test_essence.py). `floats`: whether `data` holds a float, when the
    caller knows (`holds_float(data)`; None: searched here)."""
    if not (holds_float(data) if floats is None else floats):
        try:
            return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            pass
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: JobSpec) -> str:
    """SHA-256 hex of the canonical essence. Stable across processes and versions."""
    return essence_and_hash(spec)[1]


def hash_essence(data: dict[str, Any]) -> str:
    return _sha256_hex(canonical_json(data))


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hashes_to(data: dict[str, Any], spec_hash: str) -> bool:
    """`hash_essence(data) == spec_hash`, for JSON data (no NaN or infinity: what the
    database gives back), mostly without `canonical_json`'s search for floats.

    Tried first: orjson's text. If it hashes to `spec_hash`, it IS the canonical text
    that hash was made of; and orjson's text reads back as exactly `data` (its floats
    are spelled to round-trip, an integer is never spelled as a float), so `data` is the
    value that canonical text reads back as, whose canonical text it is: the answer is
    True either way. Otherwise (a float orjson spells another way, or data that is
    simply not the essence of that hash) the canonical text decides."""
    try:
        text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits, a lone surrogate
        pass
    else:
        if hashlib.sha256(text).hexdigest() == spec_hash:
            return True
    return hash_essence(data) == spec_hash
