"""Redaction of values whose keys look secret, for API responses, logs and errors.

A key looks secret when any of its words (split on `_`, `-`, `.` and camelCase) is one of
SECRET_WORDS, e.g. `password`, `api_key`, `authToken`, `client-secret`.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "secret", "token", "key", "apikey", "auth",
        "authorization", "credential", "credentials", "private", "passphrase", "cookie",
        "session", "dsn", "signature",
    }
)
_WORD_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")


def looks_secret(key: str) -> bool:
    words = {word.lower() for word in _WORD_SPLIT.split(key) if word}
    return bool(words & SECRET_WORDS) or key.lower().replace("_", "") in SECRET_WORDS


def redact(value: Any) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and looks_secret(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
