"""mask_text's short cuts (text that can hold only a bare token) give exactly what
running every shape gives."""

from __future__ import annotations

import re._parser
from urllib.parse import unquote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.redact import (
    _HINTS,
    _OTHER_SHAPES_HINT,
    _TOKEN_SHAPES,
    SHORTEST_TOKEN,
    _mask_plain,
    _needs_every_shape,
    mask_text,
)


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
    # Non-ASCII look-alikes that a case-blind regex takes for `s`, `i`, `k`.
    st.sampled_from(FRAGMENTS) | st.text(alphabet="abTkn_-:=@%/ .Bſı\u212aé", max_size=6),
    max_size=4,
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


@settings(max_examples=500, deadline=None)
@given(text=texts | st.text(max_size=12))
def test_the_other_shapes_are_found_as_the_regex_finds_them(text: str) -> None:
    """`_needs_every_shape` searches ASCII text with `in`: exactly the case-blind regex."""
    assert _needs_every_shape(text) == (_OTHER_SHAPES_HINT.search(text) is not None)
    for word in ("BeArEr x", "baſic", "ıToKEN", "\u212a"):
        assert _needs_every_shape(word) == (_OTHER_SHAPES_HINT.search(word) is not None)
