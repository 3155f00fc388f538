"""A job spec rebuilt, without validating it again, from a document that validated before.

A forked loader child (spec.parallel) validated each document it sends back with this
very code, in a copy of this very process: the parent takes its word for it. Validating
again cost ~10 µs a job, building the models from the document ~4 µs: a cold apply's
parent takes a file of 10 jobs over from the child in 0.15–0.19 instead of 0.26–0.35
ms (bench/RESULTS.md, issue 15, helper `handover`).

What validating a valid document adds to it is all that is done here: the defaults of
the fields it leaves out (a fresh list or dict where a factory makes one), the nested
models (the schedule, its interval or cron field map, dst) and the set of fields given.
The values are the document's own: validation keeps its texts, numbers and datetimes,
and its plain `args` and `kwargs` (spec.plainjson); it would copy other lists and dicts
(equal, not the same objects). A moment (`start`,
`end`, `at`) that is not a datetime yet (text, or a number read as a timestamp) is
parsed by validation: such a document is validated again.

tests/spec/test_rebuild.py: the same spec as `JobSpec.model_validate` (==, its dumps,
its fields set, its repr) for random valid documents and the bench corpus; and every
field whose type holds a model or a datetime, every validator, is one known here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from reconciler.spec.model import (
    CronFieldMap,
    CronSchedule,
    DateSchedule,
    DstPolicySpec,
    Interval,
    IntervalSchedule,
    JobSpec,
)

Model = TypeVar("Model", bound=BaseModel)


def rebuild_spec(document: dict[str, Any]) -> JobSpec:
    """`JobSpec.model_validate(document)` for a `document` it accepted before (in this
    process or a forked copy of it). Nothing is checked: for any other document the
    result is undefined. The spec holds the document's lists and dicts: nothing may
    change them after."""
    start, end = document.get("start"), document.get("end")
    if not (_is_moment(start) and _is_moment(end)):
        return JobSpec.model_validate(document)
    schedule = _schedule(document["schedule"])
    if schedule is None:
        return JobSpec.model_validate(document)
    values = _JOB_DEFAULTS.copy()
    values.update(document)  # every key is a field (extra="forbid"): the fields' order kept
    for name, factory in _JOB_FACTORIES:
        if name not in document:
            values[name] = factory()
    values["schedule"] = schedule
    if values["dst"] is not None:
        values["dst"] = _flat(DstPolicySpec, values["dst"])
    return _made(JobSpec, values, document)


def _schedule(data: dict[str, Any]) -> BaseModel | None:
    """The schedule model of a valid schedule mapping (exactly one key); None when its
    `at` is not a datetime yet."""
    if "cron" in data:
        cron = data["cron"]
        value = cron if isinstance(cron, str) else _flat(CronFieldMap, cron)
        return _made(CronSchedule, {"cron": value}, data)
    if "interval" in data:
        return _made(IntervalSchedule, {"interval": _flat(Interval, data["interval"])}, data)
    at = data["at"]
    return _made(DateSchedule, {"at": at}, data) if type(at) is datetime else None


def _is_moment(value: object) -> bool:
    """Kept as it is by validation: None or a datetime (not text to parse)."""
    return value is None or type(value) is datetime


def _flat(cls: type[Model], data: Mapping[str, Any]) -> Model:
    """A model whose fields all have plain defaults (a cron field map, an interval, dst)."""
    values = _FLAT_DEFAULTS[cls].copy()
    values.update(data)
    return _made(cls, values, data)


def _made(cls: type[Model], values: dict[str, Any], given: Mapping[str, Any]) -> Model:
    """What validation leaves on a model: its fields (in their order), the names given,
    no extra fields (extra="forbid"), no private attributes."""
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(given))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


# The models are frozen: their own __setattr__ refuses.
_new = object.__new__
_set = object.__setattr__


def _defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """Each field's default, in the fields' order (for a required field or one with a
    factory, a placeholder: the document's value or the factory's replaces it)."""
    return {name: field.default for name, field in cls.model_fields.items()}


_JOB_DEFAULTS = _defaults(JobSpec)
_JOB_FACTORIES: tuple[tuple[str, Callable[[], Any]], ...] = tuple(
    (name, field.default_factory)  # type: ignore[misc]  # none of them takes the data
    for name, field in JobSpec.model_fields.items()
    if field.default_factory is not None
)
_FLAT_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {
    cls: _defaults(cls) for cls in (CronFieldMap, Interval, DstPolicySpec)
}
