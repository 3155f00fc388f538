"""Whether a value is plain, finite JSON: what validating it as pydantic's JsonValue keeps.

JobSpec's `args` and `kwargs` are `list[JsonValue]` and `dict[str, JsonValue]` with
finite numbers only. pydantic picks the type of each value inside them by a Python call
(`pydantic.types._get_type_name`), and the finite check walked them again: ~19,000
instructions a job of the bench corpus, a quarter of its validation. Almost every value
a YAML file gives is plain: dicts with text keys, lists, text, integers, booleans, null
and finite floats, each of exactly that type. Validation would accept such a value and
give back an equal copy; JobSpec takes it as it is after this one walk (the model then
holds the document's lists and dicts, as spec.rebuild's models do). Anything else (a
subclass, a datetime, NaN, a key that is not text, deeper than MAX_DEPTH) is validated
by pydantic as before, errors and all.
"""

from __future__ import annotations

from math import isfinite
from typing import Any

# Far below pydantic-core's own nesting limit (255 levels: recursion_depth_exceeded),
# above the YAML loader's default (max_nesting_depth, 32). Deeper goes through pydantic.
MAX_DEPTH = 64


def is_plain_json(value: Any) -> bool:
    """True if `value` and everything in it is a dict (text keys), list, str, int,
    bool, None or finite float, each of exactly that type, at most MAX_DEPTH deep.

    Walked level by level, the common types tested by identity first: it runs for each
    job's kwargs (and args) in place of pydantic's per-value calls."""
    level = [value]
    for _ in range(MAX_DEPTH):
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                continue
            if kind is dict:
                for key in item:
                    if type(key) is not str:
                        return False
                below += item.values()
            elif kind is list:
                below += item
            elif kind is not float or not isfinite(item):
                return False
        if not below:
            return True
        level = below
    return False
