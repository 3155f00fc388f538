"""mask_text looks for a shape only in text that holds what each match of it needs:
that gives exactly what looking for every shape in every text gives."""

from __future__ import annotations

import re._parser
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.redact import (
    _AUTH_SCHEME,
    _AUTH_SCHEME_NAME,
    _SLACK_WEBHOOK,
    _TOKEN_SHAPES,
    _URL_USERINFO,
    REDACTED,
    SHORTEST_AUTH_HEADER,
    SHORTEST_TOKEN,
    _mask_auth_header,
    _mask_pairs,
    _mask_userinfo,
    _mask_webhook,
    _may_hold_token,
    _may_name_auth_scheme,
    mask_text,
)


def every_shape(text: str) -> str:
    """mask_text without any short cut: every shape looked for in any text, then in the
    text decoded, whatever it holds. Built from the shapes' regexes alone, so that no
    mark mask_text relies on can hide a secret from this test. (Text that decoding
    leaves as it is is not looked at twice: a second look finds only what masking
    made, a token glued to a masked one, `AKIA...ghp_...`; that is no decoding.)"""
    masked = _every_plain_shape(text)
    decoded = unquote_plus(masked)
    if decoded != masked and (revealed := _every_plain_shape(decoded)) != decoded:
        return revealed
    return masked


def _every_plain_shape(text: str) -> str:
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _AUTH_SCHEME.sub(_mask_auth_header, text)
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    text = _SLACK_WEBHOOK.sub(_mask_webhook, text)
    return _mask_pairs(text)


# A JWT whose base64url parts hold neither `_` nor `-`.
PLAIN_JWT = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5NaXgL0n3I9PlFUP0THsR8U"
)
FRAGMENTS = [
    # What a plan holds most: names, descriptions, crons, zones, URLs.
    "job-00001",
    "generated job 1",
    "59 23 * * *",
    "Europe/Berlin",
    "America/New_York",
    "https://example.com/hook/1",
    "reconciler.tasks.example_task",
    # Tokens.
    "ghp_" + "a1" * 12,
    "sk-" + "Z9" * 12,
    "AKIA" + "A1" * 8,
    "ASIA" + "B2" * 8,
    "AIza" + "x" * 35,
    "xoxb-1234567890-abc",
    "xoxb-123456789",  # one character short of a token
    "AKIA" + "A1" * 7,  # two short
    PLAIN_JWT,
    "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.c2lnbmF0dXJlMTIz",
    "eyJhbGci_iJIUzI1.eyJzdWIi-iIxMjM0.c2lnbmF0dXJlMTIz",
    # Authorization headers, in any case, after any whitespace.
    "Bearer abcdef123456",
    "BEARER abcdefghijkl",
    "bEaReR abcdefghijkl",
    "TOKEN abcdef123456",
    "token\tabcdef",
    "basic QWxhZGRpbjpvcGVu",
    "Basic\x1cabcdef",  # an ASCII whitespace that is not printable
    "Token\u00a0abcdef",  # a non-ASCII whitespace
    "Bearer+abcdefghijkl",  # form-encoded
    "Bearer%20abcdefghijkl",
    # Non-ASCII look-alikes a case-blind regex takes for `s`, `i`, `k`.
    "baſic abcdefgh",
    "basıc abcdefgh",
    "basİc abcdefgh",
    "to\u212aen abcdefgh",
    # URLs' user parts and pairs.
    "postgresql://app:hunter2@db/x",
    "https://" + "t0k3n" * 4 + "@github.com/r",
    "password=hunter2",
    "api_key: 'k'",
    "ssh_\u212aey=v",  # the key's `key` is spelt with the Kelvin sign
    "note: ",
    "%70assword%3Dhunter2",
    "%3D",
]
texts = st.lists(
    st.sampled_from(FRAGMENTS)
    | st.text(alphabet="abTkn_-:=@%+/ .\tBAeyJſıİ\u212aé\x1c\u00a0", max_size=6),
    max_size=4,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=texts)
def test_mask_text_is_every_shape_in_every_text(text: str) -> None:
    assert mask_text(text) == every_shape(text)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # Secrets that the old hint list (`_`, `-`, `Bearer`, `Token`, ...) did not see.
        (PLAIN_JWT, REDACTED),
        (f"jwt {PLAIN_JWT} used", "jwt *** used"),
        ("BEARER abcdefghijkl", "BEARER ***"),
        ("TOKEN abcdef123456", "TOKEN ***"),
        ("baſic abcdefghijkl", "baſic ***"),
        # `+` is a space in a query string: decoded, as `%20` is.
        ("GET /x?h=Bearer+abcdefghijkl", "GET /x?h=Bearer ***"),
        ("GET /x?h=Bearer%20abcdefghijkl", "GET /x?h=Bearer ***"),
    ],
)
def test_secrets_without_the_old_hints_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_a_bare_token_in_a_name_is_still_masked() -> None:
    assert mask_text("job-ghp_" + "a1" * 12) == "job-***"
    assert mask_text("TOKEN abcdef123456-x y") == "TOKEN *** y"


def _shortest_match(pattern: re.Pattern[str]) -> int:
    shortest, _ = re._parser.parse(pattern.pattern, pattern.flags).getwidth()
    return shortest


def test_no_token_is_shorter_than_the_short_cut_assumes() -> None:
    """mask_text looks for no token in text shorter than SHORTEST_TOKEN: the shortest
    text _TOKEN_SHAPES can match must be that long."""
    assert _shortest_match(_TOKEN_SHAPES) == SHORTEST_TOKEN
    assert mask_text("xoxb-1234567890") == "***"
    assert mask_text("xoxb-123456789") == "xoxb-123456789"


def test_no_header_is_shorter_than_the_short_cut_assumes() -> None:
    """Nor for an authorization header in text shorter than SHORTEST_AUTH_HEADER, and
    for neither below it (a header fits in less than a token)."""
    assert _shortest_match(_AUTH_SCHEME) == SHORTEST_AUTH_HEADER <= SHORTEST_TOKEN
    assert mask_text("Basic abcdef") == "Basic ***"
    assert mask_text("Basic abcde") == "Basic abcde"


@settings(max_examples=300, deadline=None)
@given(token=st.from_regex(_TOKEN_SHAPES, fullmatch=True))
def test_every_token_holds_a_mark(token: str) -> None:
    """`_may_hold_token` lets through whatever _TOKEN_SHAPES matches."""
    assert _may_hold_token(token)


@settings(max_examples=1000, deadline=None)
@given(text=texts | st.text(max_size=12))
def test_auth_schemes_are_found_as_the_regex_finds_them(text: str) -> None:
    """`_may_name_auth_scheme` searches ASCII text with `in`: exactly the case-blind
    regex, where whitespace could follow; other text with the regex."""
    found = _AUTH_SCHEME_NAME.search(text) is not None
    if text.isascii():
        found = found and any(c.isspace() for c in text)
    assert _may_name_auth_scheme(text) == found
    for word in ("BeArEr x", "baſic x", "ıToKEN x", "to\u212aen x", "basic\x1fx", "token\vx"):
        assert _may_name_auth_scheme(word)
    assert not _may_name_auth_scheme("bearer-basic-token")  # no whitespace to follow
