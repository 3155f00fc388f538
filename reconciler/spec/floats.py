"""The floats inside a JSON-like value (dicts, lists and tuples of scalars)."""

from __future__ import annotations

from math import isfinite
from typing import Any


def holds_float(value: Any, *, nonfinite_only: bool = False) -> bool:
    """Whether `value` holds a float at any depth (only a NaN or an infinity counts when
    `nonfinite_only`).

    A loop, the common types checked by their exact type first, answering at the first
    float found: a one-shot plan asks this of 10,000 essences and validates 10,000 specs
    (spec.essence.canonical_json, JobSpec's finite-number check); a recursive generator
    of every float cost twice as much."""
    pending = [value]
    pop, extend = pending.pop, pending.extend
    while pending:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            extend(item.values())
        elif kind is list:
            extend(item)
        elif isinstance(item, float):
            if not nonfinite_only or not isfinite(item):
                return True
        elif isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return False
