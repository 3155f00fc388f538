"""What the API shows of values that may hold secrets.

Structured values go through `reconciler.redact.redact` (secret-looking keys at any
depth). Free text (a run's error, a result summary) is scrubbed of `key=value`,
`key: value` and `"key": "value"` pairs whose key looks secret, and of URL passwords;
JSON text is parsed and redacted as data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.redact import REDACTED, looks_secret, redact

# Top-level spec fields whose names contain a "secret" word but hold none.
_SPEC_FIELDS_NOT_SECRET = frozenset({"idempotency_key"})
_PAIR = re.compile(
    r"""(?P<key>["']?[A-Za-z_][\w.-]*["']?)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&}\]]+)"""
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?P<at>@)", re.I)


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
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['at']}", text)
    return _PAIR.sub(_mask_pair, text)


def _mask_pair(match: re.Match[str]) -> str:
    key = match["key"].strip("\"'")
    if not looks_secret(key):
        return match[0]
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


def _scrub_str(text: str) -> str:
    return scrub_text(text) or ""


def redact_deep(value: Any) -> Any:
    """Structured data redacted by key, and every string in it scrubbed as free text
    (for task results and exception messages, whose shape nobody declared)."""
    return redact(value, text=_scrub_str)
