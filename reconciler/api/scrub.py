"""What the API shows of values that may hold secrets.

Structured values go through `reconciler.redact.redact` (secret-looking keys at any
depth, and secrets by value in every string). Free text (a run's error, a result
summary) goes through `reconciler.redact.mask_text`; JSON text is parsed and redacted
as data.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.redact import mask_text, redact

# Top-level spec fields whose names contain a "secret" word but hold none.
_SPEC_FIELDS_NOT_SECRET = frozenset({"idempotency_key"})


def redact_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with kwargs, args, labels ... redacted; harmless top-level fields kept."""
    kept = {key: spec[key] for key in _SPEC_FIELDS_NOT_SECRET if key in spec}
    redacted: dict[str, Any] = redact({k: v for k, v in spec.items() if k not in kept})
    return {**redacted, **kept}


def scrub_text(text: str | None) -> str | None:
    """Free text with secret-looking pairs and URL passwords masked. JSON is redacted as data."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.dumps(redact(json.loads(stripped)), ensure_ascii=False)
        except ValueError:
            pass
    return mask_text(text)


def _scrub_str(text: str) -> str:
    return scrub_text(text) or ""


def redact_deep(value: Any) -> Any:
    """Structured data redacted by key, and every string in it scrubbed as free text
    (for task results and exception messages, whose shape nobody declared)."""
    return redact(value, text=_scrub_str)
