"""mask_text's short cuts (text that can hold only a bare token) give exactly what
running every shape gives."""

from __future__ import annotations

import re._parser
from urllib.parse import unquote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.redact import _HINTS, _TOKEN_SHAPES, SHORTEST_TOKEN, _mask_plain, mask_text


def every_shape(text: str) -> str:
    """mask_text without short cuts: each shape on any text holding a hint."""
    if not text or not any(mark in text for mark in _HINTS):
        return text
    masked = _mask_plain(text)
    if "%" in text:
        decoded = unquote_plus(masked)
        if _mask_plain(decoded) != decoded:
            return _mask_plain(decoded)
    return masked


FRAGMENTS = [
    "job-1",
    "reconciler.tasks.example_task",
    "ghp_" + "a1" * 12,
    "sk-" + "Z9" * 12,
    "AKIA" + "A1" * 8,
    "xoxb-1234567890-abc",
    "Bearer abcdef123456",
    "TOKEN abcdef123456",
    "basic QWxhZGRpbjpvcGVu",
    "postgresql://app:hunter2@db/x",
    "https://" + "t0k3n" * 4 + "@github.com/r",
    "password=hunter2",
    "api_key: 'k'",
    "%3D",
    "xoxb-123456789",  # one character short of a token
    "xoxb-1234567890",
    "AKIA" + "A1" * 7,
    "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.c2lnbmF0dXJlMTIz",
]
texts = st.lists(
    st.sampled_from(FRAGMENTS) | st.text(alphabet="abTkn_-:=@%/ .B", max_size=6), max_size=4
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_mask_text_is_every_shape_applied(text: str) -> None:
    assert mask_text(text) == every_shape(text)


def test_a_bare_token_in_a_name_is_still_masked() -> None:
    assert mask_text("job-ghp_" + "a1" * 12) == "job-***"
    assert mask_text("TOKEN abcdef123456-x y") == "TOKEN *** y"


def test_no_token_is_shorter_than_the_short_cut_assumes() -> None:
    """mask_text returns short text without looking for tokens (SHORTEST_TOKEN): the
    shortest text _TOKEN_SHAPES can match must be that long."""
    shortest, _ = re._parser.parse(_TOKEN_SHAPES.pattern, _TOKEN_SHAPES.flags).getwidth()
    assert shortest == SHORTEST_TOKEN
    assert mask_text("xoxb-1234567890") == "***"
    assert mask_text("xoxb-123456789") == "xoxb-123456789"
