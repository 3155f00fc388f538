"""The essence of a job spec: its canonical JSON and the stable hash over it.

Like `kubectl apply`'s last-applied state, the essence is what the user declared, with
defaults made explicit: two files that mean the same job have the same essence, however
they are formatted, ordered or commented. Diffs and drift checks compare essences.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler.spec.model import JobSpec


def essence(spec: JobSpec) -> dict[str, Any]:
    """The spec as plain JSON data: defaults explicit, absent optionals left out."""
    return spec.model_dump(mode="json", exclude_none=True)


def canonical_json(data: Any) -> str:
    """One byte-exact text per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: JobSpec) -> str:
    """SHA-256 hex of the canonical essence. Stable across processes and versions."""
    return hash_essence(essence(spec))


def hash_essence(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()
