"""Memoisation per object, for values computed from immutable objects (specs, triggers).

Keyed by identity, the object itself held beside its value so that its id cannot be
reused while the entry exists; cleared when full (a recomputation is only a cost).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class IdentityMemo(Generic[Key, Value]):
    """`memo(obj)` is `compute(obj)`, computed once per object while it is remembered."""

    def __init__(self, compute: Callable[[Key], Value], *, limit: int) -> None:
        self._compute = compute
        self._limit = limit
        self._known: dict[int, tuple[Key, Value]] = {}

    def __call__(self, obj: Key) -> Value:
        known = self._known.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        value = self._compute(obj)
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[id(obj)] = (obj, value)
        return value


def interned(value: Any) -> Any:
    """`value` (JSON-like data: dicts, lists, tuples, strings, numbers) rebuilt with
    every string interned (sys.intern): equal to `value`, of the same types, in the same
    order. A daemon holds 100,000 essences and decoded row arguments whose strings
    (task names, zones, queues, label and argument keys) repeat from job to job: shared,
    they take 1.1-1.4 KB a job instead of 2.7-3.2 KB (bench/RESULTS.md)."""
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    if kind is dict:
        return {interned(key): interned(item) for key, item in value.items()}
    if kind is list:
        return [interned(item) for item in value]
    if kind is tuple:
        return tuple(interned(item) for item in value)
    return value  # numbers, None, and any other type as it is


def intern_values(data: dict[str, Any]) -> None:
    """Intern the strings of `data`'s values in place (`interned`), keeping `data` itself:
    the dict that every holder of an essence shares becomes compact for all of them.
    Equal before and after, so hashes computed from it stay true."""
    for key, item in data.items():
        data[key] = interned(item)
