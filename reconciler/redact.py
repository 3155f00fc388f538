"""Redaction of values whose keys look secret, for API responses, logs and errors.

A key looks secret when one of its words (split on `_`, `-`, `.` and camelCase) is in
SECRET_WORDS (`password`, `authToken`, `client-secret`), or it is `key` qualified by a
word such as `api` or `private` (`api_key`, `privateKey`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

REDACTED = "***"
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "private",
        "passphrase",
        "cookie",
        "session",
        "dsn",
        "signature",
    }
)
# "key" alone is too common (`key: value`, `idempotency_key`) to redact on its own; with
# one of these beside it (`api_key`, `secretKey`, `ssh-key`) it names a secret.
KEY_QUALIFIERS = frozenset(
    {"api", "secret", "private", "access", "signing", "encryption", "ssh", "master", "client"}
)
_WORD_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")


def looks_secret(key: str) -> bool:
    words = {word.lower() for word in _WORD_SPLIT.split(key) if word}
    if words & SECRET_WORDS:
        return True
    return "key" in words and bool(words & KEY_QUALIFIERS)


def redact(value: Any, *, text: Callable[[str], str] | None = None) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced, at any depth.
    `text`, if given, also rewrites every string value (free-text scrubbing)."""
    if isinstance(value, str) and text is not None:
        return text(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and looks_secret(key) else redact(item, text=text)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item, text=text) for item in value]
    return value
