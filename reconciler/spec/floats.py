"""The floats inside a JSON-like value (dicts, lists and tuples of scalars)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def floats_in(value: Any) -> Iterator[float]:
    """Every float held by `value`, at any depth.

    A loop, the common scalars passed by their exact type: a one-shot plan asks this of
    10,000 essences and validates 10,000 specs (spec.essence.canonical_json,
    JobSpec's finite-number check); recursion cost three times more."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if isinstance(item, float):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
