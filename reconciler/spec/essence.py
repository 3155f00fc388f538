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

from reconciler.spec.floats import holds_float
from reconciler.spec.model import JobSpec


def essence(spec: JobSpec) -> dict[str, Any]:
    """The spec as plain JSON data: defaults explicit, absent optionals left out.

    `previous_names` is identity history, not content: declaring it changes nothing a
    job does (no update), and jobs applied before the field existed keep their hash."""
    data = spec.model_dump(mode="json", exclude_none=True)
    # Removed here rather than excluded by the dump: pydantic's `exclude` cost a sixth
    # of every dump (a list, never None, so the key is always there).
    del data["previous_names"]
    return data


def essence_and_hash(spec: JobSpec) -> tuple[dict[str, Any], str]:
    """`essence(spec)` and its hash (`hash_essence`), searching only `args` and `kwargs`
    for floats: no other field can hold one (each is text, an integer, a boolean, or a
    moment spelled as text; tests/spec/test_load_work_reference.py)."""
    data = essence(spec)
    floats = holds_float(data["args"]) or holds_float(data["kwargs"])
    return data, _sha256_hex(canonical_json(data, floats=floats))


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
