"""Memoisation per object, for values computed from immutable objects (specs, triggers).

Keyed by identity, the object itself held beside its value so that its id cannot be
reused while the entry exists; cleared when full (a recomputation is only a cost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

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
