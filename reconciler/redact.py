"""Redaction of secrets, for plan output, API responses, logs, metrics and errors.

By key: a key looks secret when one of its words (split on `_`, `-`, `.` and camelCase)
is in SECRET_WORDS (`password`, `authToken`, `client-secret`), or it is `key` qualified
by a word such as `api` or `private` (`api_key`, `privateKey`); its whole value goes.

By value (`mask_text`, applied to every string `redact` walks, whatever its key): the
password of a URL (`postgresql://app:***@db/x`, `https://user:***@host/`), a URL whose
user part is itself a token (`https://***@github.com/...`), `password=...`-style pairs
of DSNs and headers (`host=db password=***`), `Bearer ***` / `Basic ***` (the scheme in
any case), a Slack webhook's path (`https://hooks.slack.com/services/***`), and common
token shapes (GitHub, GitLab's token prefixes, Slack, AWS access keys, Stripe/OpenAI-style
`sk-` keys, Google API keys, JWTs). Masking keeps the text around a secret, so a message
stays useful. Yelp's detect-secrets checks these shapes from outside
(tests/unit/test_redaction_oracle.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

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


# `scheme://user:password@` and `scheme://token@`: no `/`, `?`, `#` in the userinfo
# (they must be percent-encoded there), so a path holding `@` is not taken for one.
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/?#@\s\"'<>]*)"
    r"(?::(?P<password>[^/?#@\s\"'<>]*))?@",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>Bearer|Basic|Token)(?P<gap>\s+)[A-Za-z0-9._~+/=-]{6,}", re.I
)
# No text shorter than this matches _AUTH_SCHEME (`Basic`, a space, six characters;
# a test holds the two together).
SHORTEST_AUTH_HEADER = 12
_AUTH_SCHEME_NAME = re.compile("bearer|basic|token", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(
    r"\b(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    # GitLab's token prefixes: personal, deploy, feed, SCIM, runner, CI build, incoming
    # mail, pipeline trigger, OAuth application, agent.
    r"|gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|oas|agent)-[A-Za-z0-9_-]{20,}"
    # AWS access keys: long-term (AKIA), temporary (ASIA), bearer (ABIA), context (ACCA).
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{20,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")"
)
# A Slack incoming webhook: its path is the secret (whoever has it posts to the channel).
_SLACK_WEBHOOK = re.compile(
    r"(?P<url>https://hooks\.slack\.com/services/)T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
)
# No text shorter than this matches _TOKEN_SHAPES (`xox?-` and ten characters; a test
# holds the two together).
SHORTEST_TOKEN = 15
# `password=...`, `api_key: ...`, `"token": "..."` inside free text (libpq DSNs, headers,
# messages); the key decides (`looks_secret`).
_PAIR = re.compile(
    r"""(?P<key>["']?[A-Za-z_][\w.-]*["']?)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&}\]]+)"""
)


def mask_text(text: str) -> str:
    """`text` with every secret found by its shape replaced by REDACTED (see above)."""
    masked = _mask_plain(text)
    if "%" in masked or "+" in masked:  # else decoding changes nothing
        # Percent-encoded (a query string in an access log, where `+` is a space): if
        # decoding reveals a secret, the decoded text is shown masked.
        decoded = unquote_plus(masked)
        if decoded != masked and (revealed := _mask_plain(decoded)) != decoded:
            return revealed
    return masked


def _mask_plain(text: str) -> str:
    """Every shape masked in `text`. A shape is looked for only in text that holds what
    each match of it needs (tests/unit/test_mask_text.py holds this to looking for every
    shape in any text): a job's name, description or cron then costs a few `in` tests
    and no regex."""
    if "@" in text:  # a URL's user part ends at `@`
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if len(text) >= SHORTEST_AUTH_HEADER:  # <= SHORTEST_TOKEN (a test holds them)
        if _may_name_auth_scheme(text):
            text = _AUTH_SCHEME.sub(_mask_auth_header, text)
        if len(text) >= SHORTEST_TOKEN and _may_hold_token(text):
            text = _TOKEN_SHAPES.sub(REDACTED, text)
        if "hooks.slack.com" in text:
            text = _SLACK_WEBHOOK.sub(_mask_webhook, text)
    if (":" in text or "=" in text) and _may_name_secret_key(text):
        text = _mask_pairs(text)
    return text


def _may_name_auth_scheme(text: str) -> bool:
    """Whether `text` may hold an authorization header: `Bearer`, `Basic` or `Token` in
    any case and whitespace. ASCII text is searched by `in` and str methods, cheaper
    than any regex; other text by a case-blind regex, which takes `ſ` for `s`, `ı` and
    `İ` for `i` and the Kelvin sign for `k`, as _AUTH_SCHEME does."""
    if not text.isascii():
        return _AUTH_SCHEME_NAME.search(text) is not None
    if " " not in text and text.isprintable():
        return False  # no whitespace: in ASCII, the other kinds are unprintable
    lowered = text.lower()
    return "bearer" in lowered or "basic" in lowered or "token" in lowered


def _may_hold_token(text: str) -> bool:
    # Each of _TOKEN_SHAPES holds `_` or `-`, or starts with `AKIA`, `ASIA`, `ABIA`,
    # `ACCA` or `AIza` (AWS and Google keys) or `eyJ` (a JWT: its base64url parts may
    # hold neither); a test holds every match of the regex to these.
    return (
        "_" in text
        or "-" in text
        or "eyJ" in text
        or "AKIA" in text
        or "ASIA" in text
        or "ABIA" in text
        or "ACCA" in text
        or "AIza" in text
    )


# A pair is masked only when its key looks secret (looks_secret): one of the key's
# words, lowercased, is a secret word or `key`, so the lowercased text holds that word
# (lowercased in either, the Kelvin sign in `\u212aey` is a `k`).
_SECRET_KEY_WORD = re.compile("|".join(sorted(SECRET_WORDS | {"key"})))


def _may_name_secret_key(text: str) -> bool:
    return _SECRET_KEY_WORD.search(text.lower()) is not None


def _mask_webhook(match: re.Match[str]) -> str:
    return f"{match['url']}{REDACTED}"


def _mask_auth_header(match: re.Match[str]) -> str:
    return f"{match['scheme']}{match['gap']}{REDACTED}"


def _mask_userinfo(match: re.Match[str]) -> str:
    if match["password"] is not None:
        return f"{match['scheme']}{match['user']}:{REDACTED}@"
    if _looks_like_token(match["user"]):
        return f"{match['scheme']}{REDACTED}@"
    return match[0]  # `postgresql://postgres@db`: a user name is not a secret


def _looks_like_token(user: str) -> bool:
    # Long and mixing letters with digits: `ghp_...`, a hex or base64 key; not `git`, `app`.
    return len(user) >= 16 and any(c.isdigit() for c in user) and any(c.isalpha() for c in user)


def _mask_pairs(text: str) -> str:
    """`_PAIR.sub(_mask_pair, text)`, except that a pair hidden in a harmless pair's
    value is found too. Matches of `sub` never overlap: in `fire failed: token: s3cr3t`
    the first match is `failed: token:`, whose value swallows the secret pair's key, and
    in `note: password=s3cr3t` the value is `password=s3cr3t`; both were printed. After
    a harmless pair whose value holds a separator, the search resumes at that value."""
    parts: list[str] = []
    pos = 0
    while (match := _PAIR.search(text, pos)) is not None:
        value = match["value"]
        if not looks_secret(match["key"].strip("\"'")) and (":" in value or "=" in value):
            start = match.start("value")
            parts.append(text[pos:start])
            pos = start
            continue
        parts.append(text[pos : match.start()])
        parts.append(_mask_pair(match))
        pos = match.end()
    parts.append(text[pos:])
    return "".join(parts)


def _mask_pair(match: re.Match[str]) -> str:
    key = match["key"].strip("\"'")
    if not looks_secret(key) or match["value"].strip("\"'") == REDACTED:
        return match[0]
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}{REDACTED}{quote}"


def redact(value: Any, *, text: Callable[[str], str] | None = mask_text) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced, at any depth,
    and every string rewritten by `text` (default: `mask_text`, secrets by value)."""
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


class MaskingFilter(logging.Filter):
    """A log filter that masks secrets by value in every record's final message (a
    handler's filter sees records of every logger that propagates to it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kept = _change_head(message, getattr(record, "job", None))
        masked = message[:kept] + mask_text(message[kept:])
        if masked != message:
            record.msg, record.args = masked, None
        return True


# What reconciler.core.render.change_line puts before a job's name: its plan symbol.
_CHANGE_SIGILS = ("+ ", "~ ", "- ", "! ")


def _change_head(message: str, name: object) -> int:
    """The length of `~ token-refresh:` when `message` is a change line of job `name`
    (its record's reconciler.logs.JOB_FIELD), else 0. There the name is a name, not a
    key: masked, `~ token-refresh: schedule.cron ...` would read as a `token: ...` pair.
    Only that place: the name elsewhere in a line may end a real key (`api_token: x` of
    a job called `token`), and the rest of the line is masked as any other text."""
    if not isinstance(name, str) or not name or message[:2] not in _CHANGE_SIGILS:
        return 0
    return len(name) + 3 if message.startswith(f"{name}:", 2) else 0


def mask_logs(handlers: list[logging.Handler]) -> None:
    """Install one MaskingFilter on each of `handlers` (idempotent)."""
    for handler in handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
