"""The fast YAML builder against the old one (tests/spec/old_yamlsafe.py): for random
documents, the same data (types included), positions, cleanliness, YAML 1.1/1.2
ambiguities, diagnostics and node index, at several depth bounds.

Checked before landing with 6,000 examples per strategy and the hostile corpus; 200
here. What it catches (each fault tried, each failed a test): a root scalar resolved as
a value instead of as a key, `args: [...]` below the top level taken as free-form, a
`name` key below the top level taken as the job's, the decimal fast path taking `0755`
or `1٣` (a digit that is not ASCII)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.spec import yamlsafe

from . import old_yamlsafe

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
DEPTHS = (2, 4, 64)

# Plain scalars each resolver reads its own way, tags, anchors, aliases, flow
# collections, and digits that are not ASCII (Arabic-Indic, full-width, superscript).
SCALARS = [
    *["no", "No", "y", "N", "on", "OFF", "yes", "true", "True", "null", "~", "", "t0", "value"],
    *["0", "00", "0755", "-0", "+5", "5", "12", "123456789012345678", "1234567890123456789"],
    *["9" * 30, "1" * 5000, "1_000", "0b11", "0o17", "0o8", "0x1F", "0x", "1e3", "1.0e+3"],
    *["1.10", "1.5", ".5", "0.0", "-0.0", ".nan", ".NaN", ".inf", "-.inf", "1:30", "190:20:30"],
    *["2024-01-01", "2024-02-30", "2024-01-01 10:00:00", "2001-12-14t21:59:43.10-05:00"],
    *["\u0663", "1\u0663", "\uff11\uff12", "1\uff12", "2\u00b2", "1,000", "12e", "a b"],
    *["https://x.y/z", "-", "=", "<<"],
    *["'0755'", '"no"', "&a x", "*a", "!!str 5", "!!int 5", "!custom x", "&b [1]", "[1, 2]"],
    *["{a: 1}", "{}", "[]", "[[[[[1]]]]]", "{a: {b: {c: {d: 1}}}}", "*/5 * * * *"],
]
KEYS = [
    *["name", "task", "args", "kwargs", "schedule", "cron", "password", "token", "pin", "n"],
    *["no", "1", "0755", "2024-01-01", "~", "null", "true", "k", "k", "a b", "'q'", "? k"],
    *["&x k", "*x", "!!str k", "[1]", "{a: 1}"],
]


@st.composite
def block(draw: st.DrawFn, depth: int = 0) -> list[str]:
    """Lines of a block mapping or sequence, nested up to 4 levels."""
    lines: list[str] = []
    indent = "  " * depth
    sequence = depth > 0 and draw(st.booleans())
    for _ in range(draw(st.integers(1, 5))):
        lead = indent + "- " if sequence else f"{indent}{draw(st.sampled_from(KEYS))}: "
        if depth < 4 and draw(st.integers(0, 3)) == 0:
            lines.append(lead.rstrip())
            lines += draw(block(depth + 1))
        else:
            lines.append(lead + draw(st.sampled_from(SCALARS)))
    return lines


@st.composite
def streams(draw: st.DrawFn) -> str:
    """One to three documents (a mapping, or a lone scalar), explicit starts and trailing
    markers sometimes."""
    documents = []
    for _ in range(draw(st.integers(1, 3))):
        lines = draw(block() | st.sampled_from(SCALARS).map(lambda scalar: [scalar]))
        documents.append("\n".join(["---", *lines] if draw(st.booleans()) else lines))
    return "\n---\n".join(documents) + draw(st.sampled_from(["", "\n", "\n---\n", "\n...\n"]))


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(SCALARS),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


def assert_same(data: bytes) -> None:
    for depth in DEPTHS:
        new = yamlsafe.parse_yaml(data, path="f.yaml", max_depth=depth)
        old = old_yamlsafe.parse_yaml(data, path="f.yaml", max_depth=depth)
        # repr: the same types (1 vs 1.0 vs True) and key order, and NaN equal to itself
        assert repr(new.documents) == repr(old.documents)
        assert new.diagnostics == old.diagnostics
        new_index = yamlsafe.locate_nodes(data, max_depth=depth)
        assert repr(new_index) == repr(old_yamlsafe.locate_nodes(data, max_depth=depth))
    assert yamlsafe.check_text(data, path="f") == old_yamlsafe.check_text(data, path="f")


@EXAMPLES
@given(streams())
def test_block_documents_build_as_before(text: str) -> None:
    assert_same(text.encode("utf-8", errors="surrogatepass"))


@EXAMPLES
@given(json_like, st.booleans())
def test_dumped_data_builds_as_before(value: Any, flow: bool) -> None:
    documents = [value, {"name": "x", "kwargs": value, "args": [value]}]
    text = yaml.safe_dump_all(documents, default_flow_style=flow, allow_unicode=True)
    assert_same(text.encode("utf-8", errors="surrogatepass"))


@EXAMPLES
@given(st.text(max_size=200))
def test_any_text_builds_as_before(text: str) -> None:
    assert_same(text.encode("utf-8", errors="surrogatepass"))


@EXAMPLES
@given(st.binary(max_size=200))
def test_any_bytes_build_as_before(data: bytes) -> None:
    assert_same(data)


@EXAMPLES
@given(st.lists(streams(), min_size=2, max_size=5), st.sampled_from(DEPTHS))
def test_a_memo_shared_by_several_files_changes_nothing(texts: list[str], depth: int) -> None:
    # The files of one load share a ScalarMemo: a text resolved in one file (or refused
    # there: `2024-02-30`, `0755` in args) must read, and be reported, as it would alone.
    memo = yamlsafe.ScalarMemo()
    for text in texts * 2:
        data = text.encode("utf-8", errors="surrogatepass")
        shared = yamlsafe.parse_yaml(data, path="f.yaml", max_depth=depth, memo=memo)
        alone = old_yamlsafe.parse_yaml(data, path="f.yaml", max_depth=depth)
        assert repr(shared.documents) == repr(alone.documents)
        assert shared.diagnostics == alone.diagnostics
